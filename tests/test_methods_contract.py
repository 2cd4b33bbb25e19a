"""One contract, checked over every method: shape and range, seed determinism, no global RNG, bad input refused,
one callback per step, save / load / render exactly."""

from __future__ import annotations

import pytest
import torch

import genprior
from genprior.methods import (BIGPrior, BRGM, DivergenceError, FusionNet, LatentMCMC, MGANPrior, Step,
                              VariationalBRGM)
from genprior.methods.fusion_nets import BoundedPhi
from genprior.physics import Denoising, Inpainting, SuperResolution, center_mask


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return genprior.load_generator("genprior-digits32", device="cpu")


@pytest.fixture(scope="module")
def fusion_file(tmp_path_factory):
    torch.manual_seed(0)
    net = FusionNet(BoundedPhi(in_channels=3), "denoise")
    return net.save(tmp_path_factory.mktemp("fusion") / "net_1.safetensors")


CASES = {  # (method from (G, fusion file), physics)
    "map": (lambda G, f: BRGM(G, steps=4, tune_steps=3, stats_samples=500), lambda: SuperResolution(4, sigma=0.02)),
    "map-ilo": (lambda G, f: BRGM(G, steps=4, extension="ilo", ilo_steps=3, stats_samples=500),
                lambda: SuperResolution(2, sigma=0.02)),
    "vi": (lambda G, f: VariationalBRGM(G, steps=3, map_steps=3, map={"tune_steps": 2, "stats_samples": 500},
                                     num_samples=3, mc_samples=2), lambda: Inpainting(center_mask(32), sigma=0.02)),
    "mcmc": (lambda G, f: LatentMCMC(G, chains=2, burn_in=3, keep=3, thin=1, num_samples=3, map_steps=3,
                                     map={"tune_steps": 2, "stats_samples": 500}), lambda: SuperResolution(4, sigma=0.02)),
    "mganprior": (lambda G, f: MGANPrior(G, layer=8, codes=3, steps=4), lambda: Denoising(0.1)),
    "bigprior": (lambda G, f: BIGPrior(MGANPrior(G, layer=8, codes=3, steps=4), f),
                 lambda: Denoising(0.1)),
}


def observe(G, physics, n: int = 2) -> torch.Tensor:
    with torch.no_grad():
        x = G.render(G.latent_from_z(G.make_z(range(7, 7 + n))))
    return physics(x, seed=1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_method_keeps_the_contract(case, digits, fusion_file, tmp_path):
    make_method, make_physics = CASES[case]
    method, physics = make_method(digits, fusion_file), make_physics()
    y = observe(digits, physics)
    steps: list[Step] = []
    rng_before = torch.get_rng_state()
    res = method(y, physics, seed=3, callback=steps.append)
    assert torch.equal(torch.get_rng_state(), rng_before), "the global RNG was used"
    # shape and range
    assert res.mean.shape == (2, 1, 32, 32) and res.mean.min() >= 0 and res.mean.max() <= 1
    # one record per step, one format
    assert len(steps) == method.total_steps()
    assert all(isinstance(s, Step) and s.loss.shape == (2,) for s in steps)
    assert sum(len(v) for v in res.history["loss"].values()) == method.total_steps()
    assert res.config["method"] == method.name and res.config["physics"] == physics.config()
    assert res.seed == 3 and res.history["seconds"] > 0
    # the same seed gives the same result
    again = make_method(digits, fusion_file)(y, physics, seed=3)
    assert torch.equal(again.mean, res.mean)
    # save / load / render
    back = genprior.Reconstruction.load(res.save(tmp_path / case))
    assert torch.equal(back.mean, res.mean)
    assert torch.allclose(back.render(digits), res.mean, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_method_refuses_bad_observations(case, digits, fusion_file):
    make_method, make_physics = CASES[case]
    method, physics = make_method(digits, fusion_file), make_physics()
    y = observe(digits, physics, n=1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        method(torch.full_like(y, float("nan")), physics)
    with pytest.raises(ValueError, match="has shape"):
        method(torch.rand(1, 1, 5, 5), physics)
    with pytest.raises(ValueError, match="must be a genprior.physics.Physics"):
        method(y, torch.nn.Identity())
    with pytest.raises(ValueError, match="float tensor"):
        method((y * 255).to(torch.uint8), physics)


def test_a_diverging_optimisation_is_an_error_not_a_result(digits):
    method = BRGM(digits, steps=3, lr=1e30, extension="none", stats_samples=500)
    physics = SuperResolution(4, sigma=0.02)
    with pytest.raises(DivergenceError, match=r"the map stage diverged at step [12] \(loss (nan|inf)\)"):
        method(observe(digits, physics, n=1), physics)


def test_posterior_methods_continue_from_a_map_result(digits):
    physics = SuperResolution(4, sigma=0.02)
    y = observe(digits, physics)
    fit = BRGM(digits, steps=4, tune_steps=3, stats_samples=500)(y, physics, seed=0)
    for method in (VariationalBRGM(digits, steps=3, map={"stats_samples": 500}, num_samples=3, mc_samples=2),
                   LatentMCMC(digits, chains=2, burn_in=2, keep=2, thin=1, num_samples=2, map={"stats_samples": 500})):
        steps: list[Step] = []
        res = method(y, physics, seed=0, start=fit, callback=steps.append)
        assert {s.stage for s in steps} <= {"vi", "mcmc"} and len(steps) == method.total_steps() - fit_steps(method)
        assert res.config["extension_used"] == fit.config["extension_used"]
        with pytest.raises(ValueError, match="restored another observation"):
            method(observe(digits, physics, n=2) * 0.5, physics, start=fit)
    with pytest.raises(ValueError, match="does not continue"):
        BRGM(digits, steps=2)(y, physics, start=fit)


def fit_steps(method) -> int:
    return method.map.total_steps() if method.cfg.map_steps else 0
