"""BRGM MAP: the optimisation runs, lowers the energy and moves toward the truth (checks that can fail)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import genprior
from genprior.methods import BRGM
from genprior.methods.baselines import bicubic_upsample
from genprior.methods.brgm import official_weights
from genprior.methods.optim import lr_at
from genprior.physics import SuperResolution


def BoxDown():  # noqa: N802
    """x4 block average: the TF BRGM operator."""
    return SuperResolution(4, "box")


def psnr(a, b):
    return -10 * torch.log10((a - b).flatten(1).square().mean(1))


def test_lr_schedule():
    assert lr_at(0.0, 0.1, "cosine") == 0.0
    assert lr_at(0.5, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(1.0, 0.1, "cosine") == pytest.approx(0.0)
    assert lr_at(0.9, 0.1, "constant") == 0.1
    with pytest.raises(ValueError):
        lr_at(0.5, 0.1, "linear")


def test_official_weights():
    w = official_weights("superres", 32)
    assert w["pixel_weight"] == pytest.approx(65.025) and w["cosine_weight"] == 1.0
    assert official_weights("inpaint")["cosine_weight"] == 0.1


def test_map_recovers_a_generated_image_far_better_than_bicubic():
    torch.set_num_threads(1)
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    truth = G.render(G.make_z([1000]))
    y = BoxDown().A(truth)
    res = BRGM(G, space="z", steps=300, lr=0.1, anneal=30, sigma_floor=0.03, extension="none",
               consistency="none")(y, BoxDown(), seed=0)
    bicubic = bicubic_upsample(y, 4)
    gain = (psnr(res.mean, truth) - psnr(bicubic, truth)).item()
    assert gain > 5, f"MAP is only {gain:.2f} dB above bicubic"  # measured here: +10 dB (300 steps, annealed)


def test_map_on_dcgan_moves_toward_the_truth():
    torch.set_num_threads(1)
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    truth = G.render(torch.randn(2, 100, generator=torch.Generator().manual_seed(5)))
    y = BoxDown().A(truth)
    starts = []
    method = BRGM(G, space="z", steps=60, lr=0.1, perceptual_size=32, extension="none", consistency="none")
    start = method.initial_latent(y, BoxDown(), method.energy(BoxDown()), None, torch.Generator().manual_seed(0))
    res = method(y, BoxDown(), seed=0, callback=lambda step: starts.append(step))
    energy = res.history["loss"]["map"]
    assert energy[-1] < 0.5 * energy[0], energy[::10]
    assert [s.step for s in starts] == list(range(60)) and {s.stage for s in starts} == {"map"}
    assert set(starts[0].terms) == {"likelihood", "perceptual", "prior"} and starts[0].loss.shape == (2,)
    start_img = G.render(start)
    assert (psnr(res.mean, truth) > psnr(start_img, truth) + 3).all()
    assert res.mean.shape == truth.shape and res.latent.shape == (2, 100)
    assert res.config["method"] == "brgm-map" and res.config["space"] == "z"


def test_bad_settings_and_input(shared):
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    with pytest.raises(ValueError, match="no W space"):
        BRGM(G, space="w+")
    with pytest.raises(ValueError, match="NaN"):
        BRGM(G, space="z", steps=1)(torch.full((1, 3, 16, 16), float("nan")), BoxDown())
    with pytest.raises(ValueError, match=r"has shape \(1, 3, 8, 8\), but superres .* gives \(1, 3, 16, 16\)"):
        BRGM(G, space="z", steps=1)(torch.rand(1, 3, 8, 8), BoxDown())
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        BRGM(G, space="z", steps=0)
    with pytest.raises(ValueError, match="extension must be one of"):
        BRGM(G, space="z", extension="pti")
    S = genprior.load_generator(shared / "fixtures" / "stylegan2" / "B.pkl", device="cpu")
    with pytest.raises(ValueError, match="use 'w\\+' or 'w'"):
        BRGM(S, space="z")


def test_official_preset(shared):
    S = genprior.load_generator(shared / "fixtures" / "stylegan2" / "B.pkl", device="cpu")
    m = BRGM.official(S, "superres", 32)
    assert (m.cfg.steps, m.cfg.lr, m.cfg.schedule, m.cfg.space) == (501, 0.1, "constant", "w+")
    assert m.cfg.cosine_weight == 1.0 and m.cfg.perceptual_size == 256


def test_map_w_plus_on_stylegan2_lowers_the_energy(shared):
    S = genprior.load_generator(shared / "fixtures" / "stylegan2" / "B.pkl", device="cpu")
    truth = S.render(S.mapping(S.make_z([4])))
    y = BoxDown().A(truth)
    res = BRGM(S, space="w+", steps=15, lr=0.05, perceptual_weight=0, stats_samples=1000, extension="none")(
        y, BoxDown(), seed=0)
    assert res.latent.shape == (1, S.num_ws, S.w_dim)
    assert res.history["loss"]["map"][-1] < res.history["loss"]["map"][0]


def test_noise_autocorrelation_separates_white_from_structured_noise():
    from genprior.priors import noise_autocorrelation, normalise_noise_

    gen = torch.Generator().manual_seed(0)
    white = {"a": torch.randn(2, 1, 32, 32, generator=gen)}
    smooth = {"a": F.interpolate(torch.randn(2, 1, 8, 8, generator=gen), size=32, mode="bilinear")}
    normalise_noise_(smooth)
    assert smooth["a"].mean(dim=(1, 2, 3)).abs().max() < 1e-5
    assert torch.allclose(smooth["a"].std(dim=(1, 2, 3), unbiased=False), torch.ones(2), atol=1e-4)
    w, s = noise_autocorrelation(white), noise_autocorrelation(smooth)
    assert w.shape == (2,) and (s > 100 * w).all()


def test_map_with_noise_optimisation_fits_renormalised_maps_and_renders_exactly(shared):
    S = genprior.load_generator(shared / "fixtures" / "stylegan2" / "B.pkl", device="cpu")
    with torch.no_grad():
        truth = S.render(S.mapping(S.make_z([4])), noise_mode="random")
    y = BoxDown().A(truth)
    method = BRGM(S, space="w+", steps=12, lr=0.05, perceptual_weight=0, stats_samples=1000, optimize_noise=True,
                  extension="none", consistency="none")
    res = method(y, BoxDown(), seed=0)
    shapes = S.synthesis.noise_shapes()
    assert set(res.noise) == set(shapes)
    for name, (h, w) in shapes.items():
        m = res.noise[name]
        assert m.shape == (1, 1, h, w)
        assert abs(float(m.mean())) < 1e-4 and abs(float(m.square().mean()) - 1) < 1e-3
    moved = [float((res.noise[k] - S.synthesis.get_submodule(k).noise_const).abs().max()) for k in shapes]
    assert max(moved) > 1e-3  # the maps were optimised, not left at the constant noise
    assert torch.equal(res.render(S), res.mean)  # the stored noise reproduces the restoration exactly
    energy = method.energy(BoxDown())
    with torch.no_grad():  # the fitted noise fits the data better than the constant noise at the same latent
        _, fit = energy(S.render(res.latent, clamp=False, noise=res.noise), res.latent, y, BoxDown(), noise=res.noise)
        _, const = energy(S.render(res.latent, clamp=False), res.latent, y, BoxDown())
    assert fit["likelihood"].item() < const["likelihood"].item()
    assert res.history["loss"]["map"][-1] < res.history["loss"]["map"][0]


def test_noise_optimisation_needs_noise_inputs():
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    with pytest.raises(ValueError, match="noise inputs"):
        BRGM(G, space="z", optimize_noise=True)


def test_several_starts_keep_each_images_lowest_energy():
    torch.set_num_threads(1)
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    truth = G.render(torch.randn(2, 100, generator=torch.Generator().manual_seed(7)))
    y = BoxDown().A(truth)
    kw = dict(space="z", steps=40, lr=0.1, perceptual_size=32, extension="none", consistency="none")
    one = BRGM(G, starts=1, **kw)
    three = BRGM(G, starts=3, **kw)
    seen = []
    r1, r3 = one(y, BoxDown(), seed=0), three(y, BoxDown(), seed=0, callback=seen.append)
    assert r3.latent.shape == (2, 100) and r3.mean.shape == truth.shape
    energy = one.energy(BoxDown())
    with torch.no_grad():
        e1, _ = energy(G.render(r1.latent, clamp=False), r1.latent, y, BoxDown())
        e3, _ = energy(G.render(r3.latent, clamp=False), r3.latent, y, BoxDown())
    assert (e3 <= e1 * (1 + 1e-3)).all(), (e1, e3)  # the first start is the single-start fit, so never worse
    assert all(step.loss.shape == (2,) for step in seen)  # the callback sees images, not starts
    with pytest.raises(ValueError, match="starts"):
        BRGM(G, starts=0, **kw)
