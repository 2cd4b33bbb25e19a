"""Variational BRGM: samples spread where the data is silent and agree where it is not; files round-trip."""

from __future__ import annotations

import torch

import genprior
from genprior.methods import VariationalBRGM
from genprior.physics import Inpainting


def test_vi_uncertainty_follows_the_data(tmp_path):
    torch.set_num_threads(1)
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    truth = G.render(torch.randn(1, 100, generator=torch.Generator().manual_seed(2)))
    observed = torch.zeros(64, 64, dtype=torch.bool)
    observed[24:40, 24:40] = True  # only a 16x16 patch in the middle is seen
    physics = Inpainting(observed, sigma=0.05)
    y = physics(truth, seed=0)
    vi = VariationalBRGM(G, space="z", steps=40, map_steps=20, map={"tune_steps": 10}, mc_samples=2,
                         num_samples=12, lr=0.05)
    res = vi(y, physics, seed=0)
    inside, outside = res.std[:, :, observed].mean(), res.std[:, :, ~observed].mean()
    assert outside > 3 * inside, (float(inside), float(outside))
    assert res.samples.shape == (1, 12, 3, 64, 64)
    assert torch.allclose(res.mean, res.samples.mean(1))
    assert (res.latent_std > 0).all() and res.latent_std.shape == res.latent.shape
    assert res.config["method"] == "brgm-vi" and res.config["sensor_sigma"] == 0.05
    neg_elbo = res.history["loss"]["vi"]  # of the tempered likelihood: comparable once σ reached σ_n (mid-run)
    assert neg_elbo[-1] < neg_elbo[len(neg_elbo) // 2]
    assert torch.equal(res.render(G), res.mean)  # the saved sample seed redraws the same samples
    back = genprior.Reconstruction.load(res.save(tmp_path / "vi"))
    assert torch.equal(back.samples, res.samples) and torch.equal(back.latent_std, res.latent_std)
    assert (tmp_path / "vi" / "std.png").exists() and (tmp_path / "vi" / "samples.png").exists()


def test_low_rank_posterior_entropy_and_draws_match_the_full_covariance():
    from genprior.methods.vi import draw, entropy

    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(2, 3, 4, generator=gen)  # (N, rows, dims): D = 12
    sigma = torch.rand(2, 3, 4, generator=gen) + 0.2
    factors = torch.randn(2, 12, 3, generator=gen) * 0.5
    cov = torch.diag_embed(sigma.flatten(1).square()) + factors @ factors.transpose(1, 2)
    h = entropy(sigma, factors)
    assert torch.allclose(h, 0.5 * torch.logdet(cov), atol=1e-4)  # Gaussian entropy up to a constant
    assert torch.allclose(entropy(sigma, factors[..., :0]), torch.log(sigma).flatten(1).sum(1))
    w = draw(mu, sigma, factors, 40_000, gen).flatten(2)  # (S, N, D)
    assert torch.allclose(w.mean(0), mu.flatten(1), atol=0.05)
    for i in range(2):
        emp = torch.cov(w[:, i].T)
        assert (emp - cov[i]).abs().max() < 0.08 * cov[i].abs().max()
