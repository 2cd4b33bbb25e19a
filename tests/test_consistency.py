"""Data consistency, the residual's posterior samples, the noise-level estimate and the unknown kernel."""

from __future__ import annotations

import pytest
import torch

import genprior
from genprior.io.images import read_image
from genprior.physics import (Colorization, Denoising, Inpainting, SuperResolution, center_mask, estimate_sigma)
from genprior.physics.consistency import (blend, consistent, data_estimate, gaussian_smooth, misfit_variance,
                                         posterior_sample, structure_scale)


@pytest.fixture(scope="module")
def faces(shared):
    folder = shared / "data" / "faces-utk64"
    files = sorted(folder.iterdir())[-8:]
    return torch.cat([read_image(f, channels=3) for f in files])


def test_hard_projection_reproduces_the_observation(faces):
    for physics in (SuperResolution(4, "box"), Colorization(), SuperResolution(2, "bicubic_aa")):
        y = physics.A(faces)
        x = consistent(torch.full_like(faces, 0.5), y, physics, sigma=0.0, smoothness=0.0)
        assert (physics.A(x) - y).abs().max() < 2e-3, physics.name


def test_soft_consistency_trusts_the_data_as_far_as_the_noise_allows(faces):
    physics = SuperResolution(4, "box", sigma=0.05)
    y = physics(faces, seed=0)
    near = faces + 0.02 * torch.randn(faces.shape, generator=torch.Generator().manual_seed(3))
    soft = consistent(near, y, physics, smoothness=1.0)
    hard = consistent(near, y, physics, sigma=0.0, smoothness=0.0)
    rms = lambda x: (physics.A(x) - y).flatten(1).square().mean(1).sqrt()  # noqa: E731
    assert (rms(soft) > 0.035).all() and (rms(hard) < 0.005).all()  # soft does not copy the noise σ = 0.05 in
    psnr = genprior.metrics.psnr
    assert (psnr(soft, faces) > psnr(hard, faces) + 1).all()
    far = torch.full_like(faces, 0.5)  # a poor estimate: the residual is misfit, and it is corrected
    assert (psnr(consistent(far, y, physics), faces) > psnr(far, faces) + 5).all()


def test_inpainting_keeps_observed_pixels_and_continues_the_residual_into_the_hole(faces):
    physics = Inpainting(center_mask(64, 0.4), sigma=0.01)
    y = physics(faces, seed=0)
    x0 = torch.zeros_like(faces)
    x = consistent(x0, y, physics)
    m = physics.observed.expand_as(x)
    assert torch.equal(x[m], y[m])
    hole = ~m
    assert x[hole].abs().max() > 0.05  # the residual leaks smoothly into the hole's border...
    inner = torch.zeros_like(hole)
    inner[..., 28:36, 28:36] = True
    assert x[inner].abs().max() < 1e-3  # ...but not into its centre
    plain = consistent(x0, y, physics, smoothness=0.0)
    assert torch.equal(plain[hole], x0[hole])


def test_inpainting_continuation_of_a_rough_residual_does_not_hurt_the_hole(faces):
    # A generator's image misfits at the pixel scale; a noise-free continuation of that residual (the earlier
    # kriging, nugget 1e-4) put a dotted seam along the hole's border and cost 4 dB inside the hole here.
    physics = Inpainting(center_mask(64, 0.4), sigma=0.01)
    y = physics(faces, seed=0)
    gen = torch.Generator().manual_seed(1)
    x = (faces + 0.1 * gaussian_smooth(torch.randn(faces.shape, generator=gen), 1.0)).clamp(0, 1)
    hole = (~physics.observed).expand_as(x)
    def hole_mse(z): return (z - faces)[hole].square().mean()
    assert hole_mse(consistent(x, y, physics)) <= hole_mse(x)


def test_wiener_consistency_denoises(faces):
    physics = Denoising(0.1)
    y = physics(faces, seed=0)
    x = consistent(torch.full_like(faces, 0.5), y, physics, smoothness=2.0)
    assert (genprior.metrics.psnr(x, faces) > genprior.metrics.psnr(y.clamp(0, 1), faces) + 2.5).all()


def test_misfit_variance_measures_the_excess_residual(faces):
    physics = SuperResolution(4, "box", sigma=0.0)
    y = physics.A(faces)
    assert misfit_variance(y - physics.A(faces), physics, faces.shape, 1e-3, 1.0).max() < 1e-5
    off = faces + 0.1 * torch.randn(faces.shape, generator=torch.Generator().manual_seed(0))
    tau2 = misfit_variance(y - physics.A(off), physics, faces.shape, 1e-3, 0.0)
    assert torch.allclose(tau2, torch.full_like(tau2, 0.01), rtol=0.3)  # white misfit of std 0.1, K = I


def test_posterior_samples_vary_where_the_data_are_silent(faces):
    physics = Inpainting(center_mask(64, 0.4), sigma=0.01)
    y = physics(faces[:2], seed=0)
    x = physics.A_dagger(y)
    gen = torch.Generator().manual_seed(0)
    tau2 = torch.full((2,), 0.01)
    draws = torch.stack([posterior_sample(x, y, physics, tau2=tau2, gen=gen) for _ in range(8)], 1)
    std = draws.std(1)
    m = physics.observed.expand_as(std)
    assert std[m].quantile(0.99) < 2 * physics.sigma  # observed pixels vary by the noise only
    assert std[~m].mean() > 2 * std[m].mean()  # the hole by the misfit
    sr = SuperResolution(4, "box", sigma=0.01)
    y = sr(faces[:2], seed=0)
    x = data_estimate(y, sr)
    draws = torch.stack([posterior_sample(x, y, sr, tau2=tau2, gen=gen) for _ in range(64)], 1)
    assert (draws.mean(1) - consistent(x, y, sr, tau2=tau2)).abs().mean() < 0.01  # the samples' mean is the estimate
    assert ((sr.A(draws.flatten(0, 1)) - y.repeat_interleave(64, 0)).abs().mean() < 0.02)


def test_blend_and_data_estimate(faces):
    sr = SuperResolution(4, "box")
    y = sr.A(faces)
    d = data_estimate(y, sr)
    assert d.shape == faces.shape and torch.equal(blend(faces, y, sr, 0.0), d)
    assert torch.equal(blend(faces, y, sr, 1.0), faces)
    assert torch.allclose(blend(faces, y, sr, 0.25), 0.25 * faces + 0.75 * d)


def test_denoising_data_estimate_is_non_local_means(faces):
    from skimage.restoration import denoise_nl_means

    dn = Denoising(0.1)
    y = dn(faces, seed=0)
    d = data_estimate(y, dn)
    err = lambda x: float((x - faces[:len(x), :x.shape[1]]).square().mean())  # noqa: E731
    assert d.shape == faces.shape and 0 <= d.min() and d.max() <= 1
    assert err(d) < err(y.clamp(0, 1)) / 3  # 20 dB -> 25+ dB
    ref = denoise_nl_means(y[0].clamp(0, 1).permute(1, 2, 0).double().numpy(), h=0.06, sigma=0.1, patch_size=5,
                           patch_distance=6, fast_mode=True, channel_axis=-1)
    assert torch.allclose(d[0], torch.from_numpy(ref).permute(2, 0, 1).float().clamp(0, 1), atol=1e-6)
    grey = data_estimate(y[:2, :1], dn)
    assert grey.shape == (2, 1, 64, 64) and err(grey) < err(y[:2, :1].clamp(0, 1)) / 2
    assert torch.equal(data_estimate(y, Denoising(0.0)), y.clamp(0, 1))  # nothing to remove at σ 0


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
def test_noise_level_estimate(faces, sigma):
    y = faces + sigma * torch.randn(faces.shape, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(estimate_sigma(y), torch.full((8,), sigma), rtol=0.15)


def test_flat_image_noise_level_cannot_be_estimated(tmp_path):
    from genprior.errors import GenpriorError
    from genprior.restore import RestoreOptions, noise_level

    assert float(estimate_sigma(torch.full((1, 1, 32, 32), 0.3))) == 0
    with pytest.raises(GenpriorError, match="cannot estimate the noise level: the image is flat"):
        noise_level(RestoreOptions(task="denoise"), torch.full((1, 1, 32, 32), 0.3))


def test_auto_kernel_is_a_fitted_mixture_of_the_standard_kernels(faces):
    from genprior.physics import STANDARD_KERNELS, physics_from_config

    auto = SuperResolution(4, "auto")
    assert auto.fit_parameters() and set(auto.kernel_weights()) == set(STANDARD_KERNELS)
    x = faces[:1].requires_grad_(True)
    logits = auto.fit_parameters()[0].requires_grad_(True)
    auto.A(x).sum().backward()
    assert logits.grad is not None
    with torch.no_grad():
        logits.copy_(torch.tensor([0.0, 5.0, 0.0, 0.0]))
    back = physics_from_config(auto.config())
    assert back.kernel_weights()["bicubic_aa"] > 0.95
    assert torch.allclose(back.A(faces), auto.A(faces), atol=1e-6)
    near = SuperResolution(4, "bicubic_aa").A(faces)
    assert (back.A(faces) - near).abs().max() < 0.05


def test_generator_weights_apply_to_the_measured_model_file_only(monkeypatch):
    import json

    from genprior.io import zoo
    from genprior.methods import trust

    table = json.loads(trust.TABLE.read_text())
    G = genprior.load_generator("genprior-faces64", device="cpu")
    entry = table["genprior-faces64"]
    assert entry["sha256"] == zoo.get_entry("genprior-faces64").sha256  # measured on the shipped file
    for physics in (SuperResolution(4, "box"), SuperResolution(8, "box"), Inpainting(center_mask(64)),
                    Denoising(0.1), Colorization()):
        w = trust.measured_weight(G, physics)
        assert w == entry["weights"][trust.task_key(physics)] and 0 <= w <= 1
    assert trust.measured_weight(G, SuperResolution(2, "box")) == 1.0  # a task never measured: all of the prior
    for physics in (SuperResolution(4, "box"), Inpainting(center_mask(64))):  # measured misfit inflation, ≥ 1
        assert trust.measured_inflation(G, physics) == entry["misfit_inflation"][trust.task_key(physics)] >= 1
    assert trust.measured_inflation(G, SuperResolution(2, "box")) == 1.0
    path = zoo.fetch("genprior-faces64", offline=True)
    assert trust.measured_weight(genprior.load_generator(path, device="cpu"), SuperResolution(4, "box")) == 1.0
    trust._table.cache_clear()
    monkeypatch.setattr(trust, "TABLE", trust.TABLE.with_name("absent.json"))
    assert trust.measured_weight(G, SuperResolution(4, "box")) == 1.0  # retrained / unmeasured: weight 1
    assert trust.measured_inflation(G, SuperResolution(4, "box")) == 1.0
    trust._table.cache_clear()


def test_structure_scale_puts_the_residual_on_edges():
    x = torch.zeros(1, 3, 32, 32)
    x[..., 16:] = 1.0  # a vertical edge between columns 15 and 16
    a = structure_scale(x)
    assert a.shape == (1, 1, 32, 32)
    assert torch.allclose(a.square().mean(), torch.tensor(1.0))
    assert a[0, 0, :, 15].mean() > 3 * a[0, 0, :, 2].mean()  # edge vs flat
    assert torch.allclose(structure_scale(torch.full_like(x, 0.3)), torch.ones(1, 1, 32, 32))  # flat: uniform
