"""Latent priors, the VGG perceptual distance, and the Reconstruction files."""

from __future__ import annotations

import math

import pytest
import torch

import genprior
from genprior.losses import PerceptualDistance, VGG16Features, pixel_mse
from genprior.priors import GaussianPrior, cosine_prior, latent_stats
from genprior.result import Reconstruction


def test_cosine_prior_values():
    parallel = torch.tensor([[[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]]])
    assert cosine_prior(parallel).item() == pytest.approx(0.0, abs=1e-6)
    orthogonal = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])
    assert cosine_prior(orthogonal).item() == pytest.approx(2.0)  # each ordered pair once: |1-0| * 2
    opposite = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])
    assert cosine_prior(opposite).item() == pytest.approx(4.0)
    batch = torch.cat([parallel[:, :2], orthogonal])
    assert torch.allclose(cosine_prior(batch), torch.tensor([0.0, 2.0]), atol=1e-6)  # per sample, no [0] bug


def test_gaussian_prior_and_stats(shared):
    G = genprior.load_generator(shared / "fixtures" / "stylegan2" / "B.pkl", device="cpu")
    st = latent_stats(G, n=2000, seed=123)
    assert st.mean.shape == (64,) and st.std.shape == (64,)
    assert st.scale == pytest.approx(float(st.std.square().sum().sqrt()), rel=0.02)
    prior = GaussianPrior(st.mean, st.scale)
    w = st.mean + torch.zeros(3, G.num_ws, 64)
    assert torch.allclose(prior(w), torch.zeros(3))
    w[1] += st.scale / math.sqrt(64)  # every entry one "scale per dim" away
    assert prior(w)[1].item() == pytest.approx(1 / 64, rel=1e-4)
    dc = latent_stats(genprior.load_generator("dcgan-digiface64", device="cpu"))
    assert torch.equal(dc.mean, torch.zeros(100)) and dc.scale == pytest.approx(10.0)


@pytest.fixture(scope="module")
def perceptual():
    return PerceptualDistance(size=64)


def test_vgg_features_shapes():
    vgg = VGG16Features.pretrained()
    feats = vgg(torch.rand(2, 1, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)]


def test_perceptual_distance_behaves(perceptual):
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    x = G.render(G.make_z([0, 1]))
    assert torch.allclose(perceptual(x, x), torch.zeros(2), atol=1e-6)
    d_ab, d_ba = perceptual(x[:1], x[1:]), perceptual(x[1:], x[:1])
    assert torch.allclose(d_ab, d_ba, atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    d = [perceptual((x + s * noise).clamp(0, 1), x).mean().item() for s in (0.02, 0.1, 0.3)]
    assert d[0] < d[1] < d[2], d
    assert 0 < d[2] < 20
    assert pixel_mse(x, x + 0.1).allclose(torch.full((2,), 0.01))


def test_reconstruction_round_trip_renders_exactly(shared, tmp_path):
    G = genprior.load_generator(shared / "fixtures" / "stylegan2" / "A.pkl", device="cpu")
    ws = G.mapping(G.make_z([1, 2]))
    noise = {name: torch.randn(1, 1, *shape, generator=torch.Generator().manual_seed(3))
             for name, shape in G.synthesis.noise_shapes().items()}
    with torch.no_grad():
        img = G.render(ws, noise=noise)
    rec = Reconstruction(mean=img, latent=ws, noise=noise, std=torch.rand_like(img), seed=7,
                         samples=img[:, None].repeat(1, 3, 1, 1, 1), config={"method": "test"})
    out = rec.save(tmp_path / "res")
    assert {p.name for p in out.iterdir()} >= {"restored_0.png", "std_1.png", "samples_0.png", "state.safetensors",
                                               "config.json"}
    back = Reconstruction.load(out)
    assert back.seed == 7 and back.config == {"method": "test"}
    assert torch.equal(back.render(G), img)
    with pytest.raises(FileExistsError):
        rec.save(out)
