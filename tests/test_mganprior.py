"""mGANprior multi-code inversion: composition, presets, and that it fits the observation."""

from __future__ import annotations

import pytest
import torch

import genprior
from genprior.methods import MGANPrior
from genprior.metrics import psnr
from genprior.physics import Colorization


def test_single_code_with_unit_importance_is_the_generator(shared):
    G = genprior.load_generator(shared / "fixtures" / "pggan" / "res64.safetensors", device="cpu")
    inv = MGANPrior(G, layer=4, codes=1)
    z = torch.randn(2, 1, G.z_dim, generator=torch.Generator().manual_seed(0))
    alpha = torch.ones(2, 1, 128)
    with torch.no_grad():
        assert torch.allclose(inv.compose(z, alpha), (G.synthesis(z[:, 0]) + 1) / 2, atol=1e-5)


def test_colorization_inversion_beats_the_grey_image():
    torch.set_num_threads(1)
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    truth = G.render(G.make_z([1000]))
    physics = Colorization()
    y = physics.A(truth)
    res = MGANPrior(G, layer=3, codes=10, steps=120)(y, physics, seed=0)
    grey = physics.A_dagger(y)
    assert (psnr(res.mean, truth) > psnr(grey, truth) + 0.5).all()  # measured here: +0.9 dB
    assert res.tensors["z"].shape == (1, 10, 100) and res.tensors["alpha"].shape == (1, 10, 512)
    assert res.history["loss"]["inversion"][-1] < res.history["loss"]["inversion"][0]


def test_presets_and_bad_settings():
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    m = MGANPrior.preset(G, "colorize", layer=3, official=True)
    assert (m.cfg.codes, m.cfg.steps, m.cfg.vgg_weight, m.cfg.optimizer, m.cfg.lr) == (20, 1500, 1.0, "sgd", 1.0)
    fast = MGANPrior.preset(G, "inpaint", layer=3)  # genprior's default: fewer codes and steps, Adam
    assert (fast.cfg.codes, fast.cfg.steps, fast.cfg.vgg_weight, fast.cfg.optimizer, fast.cfg.lr) == (
        10, 300, 0.1, "adam", 0.1)
    assert MGANPrior.preset(G, "inpaint", layer=3, official=True).cfg.steps == 3000
    with pytest.raises(ValueError, match="no mGANprior preset"):
        MGANPrior.preset(G, "deblur")
    with pytest.raises(ValueError, match="optimizer"):
        MGANPrior(G, optimizer="lbfgs")
    with pytest.raises(ValueError, match="split point"):
        MGANPrior(G, layer=99)
