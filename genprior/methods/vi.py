"""Variational BRGM: a diagonal Gaussian posterior over the generator latent, trained on the proper ELBO.

The model, in calibrated sum form (so that the posterior width means something):

* likelihood  ``-log p(y | w) = Σ (f(G(w)) - y)² / (2 σ_n²)`` over observed values (σ_n: the physics' noise
  std, or ``noise_sigma``), plus optional ``perceptual_weight · Q``;
* prior       ``-log p(w) = ½ Σ ((w - w̄) / s_d)²`` with per-dimension mean w̄ and std s_d of the latent
  (`genprior.priors.latent_stats`), each W+ row independent, plus optional ``cosine_weight · C``.

q(w) = N(μ, diag σ² + U Uᵀ) minimises ``-ELBO = E_q[E(w)] / T - H[q]`` (the entropy term BRGM's official
code lacks; ``temperature`` T = 1 is the Bayesian posterior). ``rank`` = 0 is the mean-field posterior
(H = Σ log σ); ``rank`` r > 0 adds r shared directions U (D x r) that capture the correlations the forward
model creates between latent dimensions (H = Σ log σ + ½ log det(I + Uᵀ diag(σ⁻²) U)), which a mean-field q
ignores and thereby under-states the uncertainty. ``anneal`` tempers the likelihood early in the run (σ from
anneal·σ_n down to σ_n by mid-run), which lets μ cross the sharp valleys of a σ_n = 0.01 likelihood
(``history['neg_elbo']`` is of the tempered objective). μ starts at a short MAP fit; with
``optimize_noise`` that fit also places the StyleGAN2 noise maps, which then stay fixed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..generators import Generator
from ..priors import cosine_prior
from ..result import Reconstruction
from .brgm import BRGM
from .optim import minimise


@dataclass
class VIConfig:
    """Every setting of a variational run (saved with each result)."""

    space: str = "w+"
    steps: int = 200
    lr: float = 0.05
    schedule: str = "cosine"
    mc_samples: int = 4  # reparameterised samples per step
    noise_sigma: float | None = None  # likelihood std in [0, 1] units; None: the physics' sigma, else 0.02
    temperature: float = 1.0
    perceptual_weight: float = 0.0
    cosine_weight: float = 0.0
    init_std: float = 0.05  # initial σ as a fraction of the latent's per-dimension std
    map_steps: int = 100  # MAP steps that place μ before the ELBO steps (0: start at the mean latent)
    optimize_noise: bool = False  # StyleGAN2: the MAP fit also fits the noise maps (kept fixed under q)
    perceptual: str = "auto"  # perceptual distance of the MAP fit and of perceptual_weight: auto, lpips, vgg
    num_samples: int = 16  # posterior samples returned per image
    rank: int = 0  # low-rank directions of q's covariance (0: diagonal, mean-field)
    anneal: float = 10.0  # likelihood σ starts at anneal·σ_n and decays geometrically to σ_n by mid-run (1: off)


class VariationalBRGM:
    """``VariationalBRGM(G, steps=200)(y, physics, seed=0)`` -> `Reconstruction` with samples and std.

    ``mean`` is the per-pixel mean of the returned samples, ``std`` their per-pixel std, ``samples``
    (N, S, C, H, W); ``latent`` is μ and ``latent_std`` σ.
    """

    def __init__(self, G: Generator, *, progress: bool = False, **config: Any) -> None:
        self.G = G
        self.cfg = VIConfig(**config)
        self.progress = progress
        self.map = BRGM(G, space=self.cfg.space, steps=self.cfg.map_steps, lr=0.1, progress=progress,
                        optimize_noise=self.cfg.optimize_noise, perceptual=self.cfg.perceptual)

    def noise_sigma(self, physics: torch.nn.Module) -> float:
        if self.cfg.noise_sigma is not None:
            return float(self.cfg.noise_sigma)
        sigma = float(getattr(physics, "sigma", 0.0) or 0.0)
        return sigma if sigma > 0 else 0.02

    def energy(self, w: torch.Tensor, y: torch.Tensor, physics: torch.nn.Module, sigma_n: float,
               y_features: list[torch.Tensor] | None, noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Per-sample negative log joint (up to a constant), (N,); noise maps (N, 1, R, R) or None."""
        st = self.map.stats
        fx = physics.A(self.G.render(w, clamp=False, noise=noise))
        e = (fx - y).flatten(1).square().sum(1) / (2 * sigma_n**2)
        e = e + 0.5 * ((w - st.mean) / st.std).flatten(1).square().sum(1)
        if self.cfg.perceptual_weight:
            e = e + self.cfg.perceptual_weight * self.map.perceptual(fx, y_features)
        if self.cfg.cosine_weight and self.cfg.space == "w+":
            e = e + self.cfg.cosine_weight * cosine_prior(w)
        return e

    def __call__(self, y: torch.Tensor, physics: torch.nn.Module, *, seed: int = 0,
                 callback: Callable[[int, torch.Tensor, torch.Tensor, float], None] | None = None) -> Reconstruction:
        cfg = self.cfg
        if not torch.isfinite(y).all():
            raise ValueError("the observation contains NaN or infinite values")
        y = y.to(self.G.device).float()
        n = y.shape[0]
        sigma_n = self.noise_sigma(physics)
        start = time.perf_counter()
        noise: dict[str, torch.Tensor] = {}
        if cfg.map_steps:
            fit = self.map(y, physics, seed=seed)
            mu0 = fit.latent.to(y.device)
            noise = {k: v.to(y.device) for k, v in fit.noise.items()}
        else:
            torch.manual_seed(seed)
            mu0 = self.map.initial_latent(y, physics, None)
        gen = torch.Generator(device=y.device).manual_seed(seed)
        std_d = self.map.stats.std.expand_as(mu0)
        mu = mu0.clone().requires_grad_(True)
        rho = torch.log(torch.expm1(cfg.init_std * std_d)).clone().requires_grad_(True)  # σ = softplus(ρ)
        d = mu0[0].numel()
        factors = (0.1 * cfg.init_std * std_d.reshape(n, d, 1) / max(cfg.rank, 1) ** 0.5
                   * torch.randn((n, d, cfg.rank), generator=gen, device=y.device)).requires_grad_(True)
        opt = torch.optim.Adam([mu, rho, factors], lr=cfg.lr)
        y_features = None
        if cfg.perceptual_weight:
            with torch.no_grad():
                y_features = [f.repeat(cfg.mc_samples, 1, 1, 1) for f in self.map.perceptual.features(y)]
        y_rep = y.repeat(cfg.mc_samples, 1, 1, 1)
        noise_rep = {k: v.repeat(cfg.mc_samples, 1, 1, 1) for k, v in noise.items()} or None

        step = [0]

        def neg_elbo() -> tuple[torch.Tensor, torch.Tensor]:
            sigma = F.softplus(rho)
            w = self.draw(mu, sigma, factors, cfg.mc_samples, gen).flatten(0, 1)  # [S*N, ...], sample-major
            sigma_t = sigma_n * cfg.anneal ** max(0.0, 1 - 2 * step[0] / max(cfg.steps, 1))
            step[0] += 1
            e = self.energy(w, y_rep, physics, sigma_t, y_features, noise_rep).view(cfg.mc_samples, n).mean(0)
            return e / cfg.temperature - self.entropy(sigma, factors), sigma  # -ELBO per image, + const

        on_step = None if callback is None else (
            lambda step, loss, sigma: callback(step, mu.detach(), sigma.detach(), float(loss.mean())))
        history = minimise(opt, neg_elbo, cfg.steps, lr=cfg.lr, schedule=cfg.schedule, desc="BRGM VI",
                           progress=self.progress, on_step=on_step)
        mu, sigma, factors = mu.detach(), F.softplus(rho).detach(), factors.detach()
        samples = self.sample(mu, sigma, cfg.num_samples, gen, noise or None, factors)
        marginal_std = (sigma.square() + factors.square().sum(-1).view_as(sigma)).sqrt()
        return Reconstruction(
            mean=samples.mean(1).cpu(), std=samples.std(1).cpu(), samples=samples.cpu(), latent=mu.cpu(),
            noise={k: v.cpu() for k, v in noise.items()}, tensors={"latent_factors": factors.cpu()},
            latent_std=marginal_std.cpu(), observation=y.cpu(), seed=seed,
            config={"method": "brgm-vi", **asdict(cfg), "noise_sigma_used": sigma_n, "generator": self.G.config,
                    "physics": getattr(physics, "config", lambda: {"name": type(physics).__name__})()},
            history={"neg_elbo": history, "seconds": time.perf_counter() - start},
        )

    @staticmethod
    def draw(mu: torch.Tensor, sigma: torch.Tensor, factors: torch.Tensor, num: int,
             gen: torch.Generator) -> torch.Tensor:
        """(num, N, ...) latents from q = N(μ, diag σ² + U Uᵀ); μ, σ (N, ...), U (N, D, r)."""
        eps = torch.randn((num, *mu.shape), generator=gen, device=mu.device)
        w = mu + eps * sigma
        if factors.shape[-1]:
            eta = torch.randn((num, mu.shape[0], factors.shape[-1], 1), generator=gen, device=mu.device)
            w = w + (factors @ eta).view(num, *mu.shape)
        return w

    @staticmethod
    def entropy(sigma: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """Entropy of q up to a constant, (N,): Σ log σ + ½ log det(I + Uᵀ diag(σ⁻²) U)."""
        h = torch.log(sigma).flatten(1).sum(1)
        if factors.shape[-1]:
            scaled = factors / sigma.flatten(1)[..., None]
            eye = torch.eye(factors.shape[-1], device=factors.device)
            h = h + 0.5 * torch.logdet(eye + scaled.transpose(1, 2) @ scaled)
        return h

    @torch.no_grad()
    def sample(self, mu: torch.Tensor, sigma: torch.Tensor, num: int, gen: torch.Generator,
               noise: dict[str, torch.Tensor] | None = None, factors: torch.Tensor | None = None) -> torch.Tensor:
        """(N, num, C, H, W) images in [0, 1] rendered from latents drawn from q (with fixed noise maps)."""
        if factors is None:
            factors = mu.new_zeros((mu.shape[0], mu[0].numel(), 0))
        out = []
        for _ in range(num):
            w = self.draw(mu, sigma, factors, 1, gen)[0]
            out.append(self.G.render(w, noise=noise))
        return torch.stack(out, 1)
