"""Latent MCMC: samples of the latent posterior by preconditioned Langevin (MALA), the check on VI.

The target is the variational posterior's model (`genprior.methods.vi`): the latent likelihood with the
generator's misfit in its variance and the per-dimension Gaussian prior, at temperature 1, around the MAP fit
(whose range extension stays fixed). Each image runs ``chains`` chains of the Metropolis-adjusted Langevin
algorithm preconditioned by the prior's std (``w' = w - ε²/2 · M ∇E(w) + ε · M^½ ξ``, M = diag(s_d²)), started
at the MAP latent with a small jitter; during the first ``burn_in`` steps ε adapts per image toward an
acceptance of 0.574 (Roberts & Rosenthal). The kept draws (every ``thin``-th after burn-in) give the
diagnostics in ``history["diagnostics"]``: acceptance rate, effective sample size (Geyer's initial positive
sequence, summed over chains) and split R-hat over chains (Gelman et al.), for the energy and for the latent
projected on a few fixed random directions. ``num_samples`` of the kept draws, spread over chains and time,
are rendered and made consistent with the observation as VI's samples are.

Cost: ``chains x (burn_in + keep·thin)`` generator forward + backward passes per image, on top of the MAP fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..generators import Generator
from ..physics import Physics
from ..progress import progress as progress_bar
from ..result import Reconstruction
from .base import History, Method, check_counts, register_renderer
from .brgm import BRGM
from .extension import Extension
from .trust import measured_inflation
from .vi import continue_from, generator_misfit, latent_posterior_energy, make_sample_consistent, sampling_state

TARGET_ACCEPTANCE = 0.574


@dataclass
class MCMCConfig:
    """Every setting of a sampling run (saved with each result)."""

    space: str = "w+"
    chains: int = 4
    burn_in: int = 100
    keep: int = 50  # kept draws per chain
    thin: int = 2
    step_size: float = 0.05  # initial ε, in units of the prior's std
    noise_sigma: float | None = None
    sigma_floor: float = 0.01
    misfit: bool = True
    map_steps: int = 300
    map: dict[str, Any] = field(default_factory=dict)
    perceptual: str = "auto"
    num_samples: int = 16
    consistency: str = "sample"
    consistency_smoothness: float = 1.0
    directions: int = 4  # random latent directions tracked for the diagnostics


class LatentMCMC(Method):
    """``LatentMCMC(G, chains=4)(y, physics, seed=0)`` -> `Reconstruction` with samples, std and diagnostics."""

    name = "brgm-mcmc"
    accepts_start = True

    def __init__(self, G: Generator, *, progress: bool = False, **config: Any) -> None:
        super().__init__(G, progress=progress)
        self.cfg = MCMCConfig(**config)
        cfg = self.cfg
        check_counts(cfg, {"chains": 2, "burn_in": 0, "keep": 2, "thin": 1, "num_samples": 2, "map_steps": 1})
        if not cfg.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {cfg.step_size}")
        self.map = BRGM(G, space=cfg.space, steps=cfg.map_steps, progress=progress, perceptual=cfg.perceptual,
                        sigma_floor=cfg.sigma_floor, noise_sigma=cfg.noise_sigma, **{"extension": "tune", **cfg.map})

    def total_steps(self) -> int:
        return self.map.total_steps() + self.cfg.burn_in + self.cfg.keep * self.cfg.thin

    def energy_and_grad(self, energy: Any, w: torch.Tensor, y: torch.Tensor, physics: Physics, ext: Extension,
                        noise: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """E(w) (B,) and its gradient for latents w (B, ...)."""
        w = w.detach().requires_grad_(True)
        with torch.enable_grad():
            e, _ = energy(ext.render(self.G, w, noise), w, y, physics)
            (g,) = torch.autograd.grad(e.sum(), w)
        return e.detach(), g

    def run(self, y: torch.Tensor, physics: Physics, gen: torch.Generator, history: History,
            start: Reconstruction | None = None) -> Reconstruction:
        cfg = self.cfg
        n, c = y.shape[0], cfg.chains
        w0, noise, ext = continue_from(start, y) if start is not None else self.map.fit(y, physics, gen, history)
        noise_arg = noise or None
        sigma_n = self.map.sigma(physics)
        with torch.no_grad():
            residual = y - physics.A(ext.render(self.G, w0, noise_arg))
            misfit = (residual.flatten(1).square().mean(1) - sigma_n ** 2).clamp_min(0) if cfg.misfit \
                else torch.zeros(n, device=y.device)
            tau2 = generator_misfit(self.G, w0, noise_arg, y, physics, sigma_n, cfg.consistency_smoothness)
            tau2 = tau2 * measured_inflation(self.G, physics)  # the misfit where the data are silent
        sigma = (sigma_n ** 2 + misfit).sqrt()

        # chains are the slow axis: batch (c*n, ...), chain-major
        y_c, sigma_c, ext_c = y.repeat(c, 1, 1, 1), sigma.repeat(c), ext.repeat(c)
        noise_c = {k: v.repeat(c, 1, 1, 1) for k, v in noise.items()} or None
        scale = self.map.stats.std.expand_as(w0).repeat(c, *([1] * (w0.ndim - 1)))  # M^½
        w = w0.repeat(c, *([1] * (w0.ndim - 1))) + 0.1 * cfg.step_size * scale * torch.randn(
            (c * n, *w0.shape[1:]), generator=gen, device=y.device)
        eps = torch.full((c * n,), cfg.step_size, device=y.device)
        dirs = torch.randn((cfg.directions, w0[0].numel()), generator=gen, device=y.device)
        dirs = dirs / dirs.norm(dim=1, keepdim=True)
        energy = latent_posterior_energy(self.map.stats.mean, self.map.stats.std, sigma_c)
        e, g = self.energy_and_grad(energy, w, y_c, physics, ext_c, noise_c)
        view = (-1,) + (1,) * (w.ndim - 1)
        accepted = torch.zeros(c * n, device=y.device)
        kept, energies, projections = [], [], []
        total = cfg.burn_in + cfg.keep * cfg.thin
        for step in progress_bar(range(total), desc="mcmc", enabled=self.progress):
            ev = eps.view(view)
            mean_fwd = w - 0.5 * ev ** 2 * scale ** 2 * g
            prop = mean_fwd + ev * scale * torch.randn(w.shape, generator=gen, device=w.device)
            e_p, g_p = self.energy_and_grad(energy, prop, y_c, physics, ext_c, noise_c)
            mean_bwd = prop - 0.5 * ev ** 2 * scale ** 2 * g_p
            log_q_fwd = -((prop - mean_fwd) / (ev * scale)).flatten(1).square().sum(1) / 2
            log_q_bwd = -((w - mean_bwd) / (ev * scale)).flatten(1).square().sum(1) / 2
            log_a = (e - e_p) + log_q_bwd - log_q_fwd
            accept = torch.log(torch.rand(c * n, generator=gen, device=w.device)) < log_a
            a = accept.view(view)
            w, e, g = torch.where(a, prop, w), torch.where(accept, e_p, e), torch.where(a, g_p, g)
            rate = torch.exp(log_a.clamp(max=0)).nan_to_num(0.0)
            history.record("mcmc", step, e.view(c, n).mean(0), {"acceptance": rate.view(c, n).mean(0)})
            if step < cfg.burn_in:
                eps = eps * torch.exp(0.5 * (rate - TARGET_ACCEPTANCE) / math.sqrt(step + 1))
                continue
            accepted += accept.float()
            if (step - cfg.burn_in) % cfg.thin == cfg.thin - 1:
                kept.append(w.clone())
                energies.append(e.view(c, n).clone())
                projections.append((w.flatten(1) @ dirs.T).view(c, n, -1))
        draws = torch.stack(kept, 1).view(c, n, len(kept), *w0.shape[1:])  # (chains, N, keep, ...)
        diagnostics = chain_diagnostics(torch.stack(energies, -1), torch.stack(projections, -1))
        diagnostics["acceptance"] = (accepted.view(c, n) / (cfg.keep * cfg.thin)).mean(0).tolist()
        diagnostics["step_size"] = eps.view(c, n).mean(0).tolist()
        picks = pick_draws(c, len(kept), cfg.num_samples)
        latents = torch.stack([draws[ci, :, ki] for ci, ki in picks], 1)  # (N, S, ...)
        samples_gen = torch.Generator(device=y.device).manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        seed_tensor = torch.tensor([samples_gen.initial_seed()], dtype=torch.int64)
        weight = self.map.generator_weight(physics)
        samples = render_samples(self.G, latents, ext, noise_arg, y, physics, tau2, cfg, samples_gen, weight)
        return Reconstruction(
            mean=samples.mean(1).cpu(), std=samples.std(1).cpu(), samples=samples.cpu(),
            latent=draws.mean(dim=(0, 2)).cpu(), observation=y.cpu(),
            noise={k: v.cpu() for k, v in noise.items()},
            tensors={"sample_latents": latents.cpu(), "residual_tau2": tau2.cpu(), "samples_seed": seed_tensor,
                     **{k: v.cpu() for k, v in ext.state().items()}},
            config={"extension_used": ext.config(), "sensor_sigma": sigma_n, "generator_weight_used": weight,
                    "likelihood_sigma_mean": float(sigma.mean())},
            history={"diagnostics": diagnostics},
        )


def pick_draws(chains: int, keep: int, num: int) -> list[tuple[int, int]]:
    """(chain, index) of ``num`` draws spread round-robin over chains and evenly over time."""
    per_chain = -(-num // chains)
    times = torch.linspace(keep - 1, 0, per_chain).round().long().tolist()
    out = [(ci, t) for t in times for ci in range(chains)]
    return out[:num]


@torch.no_grad()
def render_samples(G: Generator, latents: torch.Tensor, ext: Extension, noise: dict[str, torch.Tensor] | None,
                   y: torch.Tensor, physics: Physics, tau2: torch.Tensor, cfg: MCMCConfig,
                   gen: torch.Generator, weight: float = 1.0) -> torch.Tensor:
    """(N, S, C, H, W) in [0, 1] from sample latents (N, S, ...)."""
    out = []
    for s in range(latents.shape[1]):
        x = ext.render(G, latents[:, s], noise).clamp(0, 1)
        out.append(make_sample_consistent(x, y, physics, cfg.consistency, cfg.consistency_smoothness, tau2, gen,
                                          weight))
    return torch.stack(out, 1)


def effective_sample_size(x: torch.Tensor) -> torch.Tensor:
    """ESS of chains x (C, N, T) per image (N,): Geyer's initial positive sequence on the mean autocorrelation."""
    c, n, t = x.shape
    xc = x - x.mean(-1, keepdim=True)
    var = xc.square().mean(-1).clamp_min(1e-30)
    f = torch.fft.rfft(xc, n=2 * t)
    acov = torch.fft.irfft(f * f.conj(), n=2 * t)[..., :t] / t
    rho = (acov / var[..., None]).mean(0)  # (N, T), averaged over chains
    ess = torch.empty(n)
    for i in range(n):
        total = 0.0
        for k in range(0, t - 1, 2):
            pair = float(rho[i, k] + rho[i, k + 1])
            if pair <= 0:
                break
            total += pair
        tau = max(2 * total - 1, 1.0)
        ess[i] = c * t / tau
    return ess


def split_rhat(x: torch.Tensor) -> torch.Tensor:
    """Split R-hat per image (N,) of chains x (C, N, T) (Gelman et al. 2013, BDA3 §11.4)."""
    c, n, t = x.shape
    half = t // 2
    s = torch.cat([x[..., :half], x[..., half:2 * half]], 0)  # (2C, N, half)
    means = s.mean(-1)
    b = half * means.var(0, unbiased=True)
    w = s.var(-1, unbiased=True).mean(0)
    var_plus = (half - 1) / half * w + b / half
    return (var_plus / w.clamp_min(1e-30)).sqrt()


def chain_diagnostics(energies: torch.Tensor, projections: torch.Tensor) -> dict[str, Any]:
    """ESS and split R-hat (per image) of the energy and of each latent projection; energies (C, N, T),
    projections (C, N, P, T). Worst case over the tracked quantities is reported too."""
    stats = {"energy": energies, **{f"direction_{i}": projections[:, :, i] for i in range(projections.shape[2])}}
    ess = {k: effective_sample_size(v.double()).tolist() for k, v in stats.items()}
    rhat = {k: split_rhat(v.double()).tolist() for k, v in stats.items()}
    n = energies.shape[1]
    return {"ess": ess, "rhat": rhat, "min_ess": [min(ess[k][i] for k in ess) for i in range(n)],
            "max_rhat": [max(rhat[k][i] for k in rhat) for i in range(n)], "draws_per_chain": energies.shape[-1]}


def render_mcmc(G: Generator, rec: Reconstruction) -> torch.Tensor:
    """Re-render an MCMC result's mean from its saved sample latents and sample seed."""
    s = sampling_state(G, rec)
    cfg = MCMCConfig(**{k: v for k, v in rec.config.items() if k in MCMCConfig.__dataclass_fields__})
    samples = render_samples(G, s["t"]["sample_latents"], s["ext"], s["noise"], s["y"], s["physics"],
                             s["t"]["residual_tau2"], cfg, s["gen"], s["weight"])
    return samples.mean(1).cpu()


register_renderer(LatentMCMC.name, render_mcmc)
