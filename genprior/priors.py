"""Latent priors for generator inversion, as negative log densities up to a constant (lower = more probable).

* `GaussianPrior`: BRGM's isotropic Gaussian around the mean latent, ``mean(((w - mean) / scale)²)`` with
  ``scale`` the RMS norm of the latent (a scalar), as BRGM computes it from 10,000 mapped samples.
* `DiagonalGaussianPrior`: the calibrated per-dimension Gaussian, ``½ Σ ((w - mean) / std)²`` (sum form, a
  true negative log density), used by MAP's default energy, the variational posterior and MCMC.
* `cosine_prior`: BRGM's colinearity prior over W+ rows, ``Σ_{i≠j} |1 - cos(w_i, w_j)|`` per sample.
* `noise_autocorrelation`: NVIDIA's projector regulariser that keeps optimised StyleGAN2 noise maps white.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .generators import Generator


@dataclass
class LatentStats:
    """Statistics of the latent space ``synthesis`` reads, per dimension of one row (w_dim or z_dim)."""

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,) per-dimension std
    scale: float  # RMS norm of (latent - mean): sqrt(E ||w - mean||²)


@torch.no_grad()
def latent_stats(G: Generator, n: int = 10_000, seed: int = 123) -> LatentStats:
    """Mean, per-dimension std and RMS norm of W (mapping of n z from ``RandomState(seed)``, BRGM's recipe).

    For generators without a mapping network the latent is z ~ N(0, I): mean 0, std 1, scale sqrt(z_dim).
    """
    if G.w_dim is None:
        d = G.z_dim
        return LatentStats(torch.zeros(d, device=G.device), torch.ones(d, device=G.device), float(np.sqrt(d)))
    z = torch.from_numpy(np.random.RandomState(seed).randn(n, G.z_dim)).float().to(G.device)
    c = None
    if getattr(G, "c_dim", 0):
        raise ValueError("latent statistics of conditional generators need labels; not supported")
    w = torch.cat([G.mapping(z[i : i + 1000], c)[:, 0] for i in range(0, n, 1000)])
    mean = w.mean(0)
    scale = float((w - mean).square().sum(1).mean().sqrt())
    return LatentStats(mean, w.std(0), scale)


class GaussianPrior(torch.nn.Module):
    """``mean(((latent - mean) / scale)²)`` over every latent entry, per sample -> (N,)."""

    def __init__(self, mean: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.scale = float(scale)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        d = (latent - self.mean) / self.scale
        return d.flatten(1).square().mean(1)


class DiagonalGaussianPrior(torch.nn.Module):
    """``½ Σ ((latent - mean) / std)²`` over every latent entry, per sample -> (N,).

    mean, std: (D,) per dimension of one latent row (broadcast over W+ rows); a latent (N, D) or (N, L, D).
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((latent - self.mean) / self.std).flatten(1).square().sum(1)


def cosine_prior(ws: torch.Tensor) -> torch.Tensor:
    """BRGM's colinearity prior: ``Σ_{i≠j} |1 - cos(w_i, w_j)|`` over the rows of ws (N, L, D) -> (N,).

    Each unordered pair counts twice, as in the official code; 0 when all rows are parallel. Unlike the
    official code every sample of the batch uses its own rows.
    """
    if ws.ndim != 3 or ws.shape[1] < 2:
        return ws.new_zeros(ws.shape[0])
    u = torch.nn.functional.normalize(ws, dim=2)
    return (1 - u @ u.transpose(1, 2)).abs().sum(dim=(1, 2))


def noise_autocorrelation(noise: dict[str, torch.Tensor]) -> torch.Tensor:
    """Squared one-pixel autocorrelations of noise maps, summed over maps and scales -> (N,).

    noise: name -> (N, 1, R, R) maps. At each scale (R, R/2, ... down to 8, by 2x2 averaging) the mean of
    x·shift(x) along each axis is squared and added, as NVIDIA's StyleGAN2 projector regularises its noise.
    White noise scores about 0; structure (the generator hiding image content in the noise) scores high.
    """
    total = None
    for x in noise.values():
        while True:
            for dim in (2, 3):
                term = (x * torch.roll(x, shifts=1, dims=dim)).mean(dim=(1, 2, 3)).square()
                total = term if total is None else total + term
            if x.shape[-1] <= 8:
                break
            x = torch.nn.functional.avg_pool2d(x, 2)
    if total is None:
        raise ValueError("no noise maps given")
    return total


def normalise_noise_(noise: dict[str, torch.Tensor]) -> None:
    """In place: each map (N, 1, R, R) to zero mean and unit std per image (NVIDIA's projector does this)."""
    with torch.no_grad():
        for x in noise.values():
            x.sub_(x.mean(dim=(1, 2, 3), keepdim=True))
            x.div_(x.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8))
