"""Variational BRGM: a Gaussian posterior over the generator latent, trained on the proper ELBO, with the
generator's misfit in the likelihood and in the pixel samples.

The model (calibrated sum form, so that widths mean something):

* the truth is ``x = G(w) + r``: the generator's image plus a residual r the generator cannot produce,
  ``r ~ N(0, τ² Σ)`` (Σ a smooth covariance shaped by the image's edges, `genprior.physics.consistency`; τ² from
  the fit's residual times the misfit inflation measured for the zoo generator and task,
  `genprior.methods.trust.measured_inflation`);
* the sensor ``y = A x + n``, ``n ~ N(0, σ_n² I)``; integrating r out on the observation grid gives the latent
  likelihood ``Σ (A G(w) - y)² / (2 σ²)`` with ``σ² = σ_n² + τ_y²`` (τ_y²: the misfit variance per observed value,
  estimated from the MAP fit's residual when ``misfit=True``);
* the prior ``½ Σ ((w - w̄) / s_d)²`` (per-dimension mean and std of the latent), as MAP's.

q(w) = N(μ, diag σ_q² + U Uᵀ) minimises ``-ELBO = E_q[E(w)] / T - H[q]``; ``rank`` r > 0 adds r shared
directions U (entropy ``Σ log σ_q + ½ log det(I + Uᵀ diag(σ_q⁻²) U)``). μ starts at the MAP fit (`BRGM`, its
range extension kept fixed under q); ``anneal`` tempers the likelihood early (σ from anneal·σ down to σ by
mid-run). Samples: latents drawn from q, rendered, then each made consistent with the observation by drawing
the residual r from its posterior given the sample's misfit (Matheron's rule; ``consistency="sample"``), so the
samples differ where the data are silent (an in-painting hole) and agree where they are not. ``mean`` and
``std`` are the per-pixel mean and std of the samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..generators import Generator
from ..physics import Physics
from ..physics.consistency import blend, misfit_variance, posterior_sample
from ..result import Reconstruction
from ..losses import GaussianLikelihood
from ..priors import DiagonalGaussianPrior
from .base import History, Method, check_counts, register_renderer
from .brgm import BRGM, apply_consistency
from .energy import LatentEnergy
from .extension import Extension, extension_from_state
from .optim import minimise
from .trust import measured_inflation

SAMPLE_STREAM = 1_000_003  # the posterior samples use their own seeded stream, so that render() redraws them


@dataclass
class VIConfig:
    """Every setting of a variational run (saved with each result)."""

    space: str = "w+"
    steps: int = 100
    lr: float = 0.05
    schedule: str = "cosine"
    mc_samples: int = 4  # reparameterised samples per step
    noise_sigma: float | None = None  # sensor noise std; None: the physics' sigma
    sigma_floor: float = 0.01
    misfit: bool = True  # add the MAP residual's misfit variance to the likelihood's
    temperature: float = 1.0
    perceptual_weight: float = 0.0
    cosine_weight: float = 0.0
    init_std: float = 0.05  # initial σ_q as a fraction of the latent's per-dimension std
    map_steps: int = 300  # steps of the MAP fit that places μ (0: start at the mean latent, no extension)
    map: dict[str, Any] = field(default_factory=dict)  # other settings of that fit (e.g. extension="ilo")
    optimize_noise: bool = False  # StyleGAN2: the MAP fit also fits the noise maps (kept fixed under q)
    perceptual: str = "auto"
    num_samples: int = 16  # posterior samples returned per image
    rank: int = 0  # low-rank directions of q's covariance (0: diagonal, mean-field)
    anneal: float = 10.0  # likelihood σ starts at anneal·σ and decays geometrically to σ by mid-run (1: off)
    consistency: str = "sample"  # "sample" (residual drawn from its posterior), "soft", "hard" or "none"
    consistency_smoothness: float = 1.0


class VariationalBRGM(Method):
    """``VariationalBRGM(G, steps=100)(y, physics, seed=0)`` -> `Reconstruction` with samples and std.

    ``mean`` is the per-pixel mean of the returned samples, ``std`` their per-pixel std, ``samples``
    (N, S, C, H, W); ``latent`` is μ and ``latent_std`` the marginal std of q.
    """

    name = "brgm-vi"
    accepts_start = True

    def __init__(self, G: Generator, *, progress: bool = False, **config: Any) -> None:
        super().__init__(G, progress=progress)
        self.cfg = VIConfig(**config)
        cfg = self.cfg
        check_counts(cfg, {"steps": 1, "mc_samples": 1, "num_samples": 2, "map_steps": 0, "rank": 0})
        if cfg.consistency not in ("sample", "soft", "hard", "none"):
            raise ValueError(f"consistency must be sample, soft, hard or none, not {cfg.consistency!r}")
        map_cfg = {"extension": "tune", **cfg.map}
        self.map = BRGM(G, space=cfg.space, steps=max(cfg.map_steps, 1), progress=progress,
                        optimize_noise=cfg.optimize_noise, perceptual=cfg.perceptual, sigma_floor=cfg.sigma_floor,
                        noise_sigma=cfg.noise_sigma, **map_cfg)

    def total_steps(self) -> int:
        return (self.map.total_steps() if self.cfg.map_steps else 0) + self.cfg.steps

    def sensor_sigma(self, physics: Physics) -> float:
        return self.map.sigma(physics)

    def energy(self, sigma: torch.Tensor) -> LatentEnergy:
        """The negative log joint of the latent (the shared terms of `genprior.methods.energy`): the Gaussian
        likelihood with std ``sigma`` (per latent of the batch, (B,)), the per-dimension prior, and the optional
        perceptual / colinearity terms."""
        st = self.map.stats
        cfg = self.cfg
        return latent_posterior_energy(st.mean, st.std, sigma, perceptual=self.map.perceptual if cfg.perceptual_weight
                                       else None, perceptual_weight=cfg.perceptual_weight,
                                       cosine_weight=cfg.cosine_weight)

    def run(self, y: torch.Tensor, physics: Physics, gen: torch.Generator, history: History,
            start: Reconstruction | None = None) -> Reconstruction:
        cfg = self.cfg
        n = y.shape[0]
        from .extension import NoExtension

        if start is not None:
            mu0, noise, ext = continue_from(start, y)
        elif cfg.map_steps:
            mu0, noise, ext = self.map.fit(y, physics, gen, history)
        else:
            energy = self.map.energy(physics)
            mu0, noise, ext = self.map.initial_latent(y, physics, energy, None, gen), {}, NoExtension()
        noise_arg = noise or None
        sigma_n = self.sensor_sigma(physics)
        with torch.no_grad():
            residual = y - physics.A(ext.render(self.G, mu0, noise_arg))
            misfit = (residual.flatten(1).square().mean(1) - sigma_n ** 2).clamp_min(0) if cfg.misfit \
                else torch.zeros(n, device=y.device)
            tau2 = generator_misfit(self.G, mu0, noise_arg, y, physics, sigma_n, cfg.consistency_smoothness)
            tau2 = tau2 * measured_inflation(self.G, physics)  # the misfit where the data are silent
        sigma = (sigma_n ** 2 + misfit).sqrt()  # (N,) likelihood std per image

        std_d = self.map.stats.std.expand_as(mu0)
        mu = mu0.clone().requires_grad_(True)
        rho = torch.log(torch.expm1(cfg.init_std * std_d)).clone().requires_grad_(True)  # σ_q = softplus(ρ)
        d = mu0[0].numel()
        factors = (0.1 * cfg.init_std * std_d.reshape(n, d, 1) / max(cfg.rank, 1) ** 0.5
                   * torch.randn((n, d, cfg.rank), generator=gen, device=y.device)).requires_grad_(True)
        opt = torch.optim.Adam([mu, rho, factors], lr=cfg.lr)
        y_features = None
        if cfg.perceptual_weight:
            with torch.no_grad():
                y_features = [f.repeat(cfg.mc_samples, 1, 1, 1) for f in self.map.perceptual.features(y)]
        k = cfg.mc_samples
        y_rep, ext_rep = y.repeat(k, 1, 1, 1), ext.repeat(k)
        noise_rep = {name: v.repeat(k, 1, 1, 1) for name, v in noise.items()} or None
        energy = self.energy(sigma.repeat(k))

        def neg_elbo(step: int) -> tuple[torch.Tensor, dict]:
            sig_q = F.softplus(rho)
            w = draw(mu, sig_q, factors, k, gen).flatten(0, 1)  # [k*N, ...], sample-major
            temper = cfg.anneal ** max(0.0, 1 - 2 * step / max(cfg.steps, 1))
            e, _ = energy(ext_rep.render(self.G, w, noise_rep), w, y_rep, physics, y_features=y_features,
                          scale={"likelihood": temper ** -2})
            e = e.view(k, n).mean(0)
            h = entropy(sig_q, factors)
            return e / cfg.temperature - h, {"energy": e.detach(), "entropy": h.detach()}

        minimise(opt, neg_elbo, cfg.steps, history, stage="vi", lr=cfg.lr, schedule=cfg.schedule,
                 progress=self.progress)
        mu, sig_q, factors = mu.detach(), F.softplus(rho).detach(), factors.detach()
        samples_gen = torch.Generator(device=y.device).manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        state = {"latent_std_q": sig_q, "latent_factors": factors, "likelihood_sigma": sigma, "residual_tau2": tau2,
                 **ext.state()}
        seed_tensor = torch.tensor([samples_gen.initial_seed()], dtype=torch.int64)
        weight = self.map.generator_weight(physics)
        samples = self.sample(mu, sig_q, factors, ext, noise_arg, y, physics, tau2, samples_gen, weight)
        marginal_std = (sig_q.square() + factors.square().sum(-1).view_as(sig_q)).sqrt()
        return Reconstruction(
            mean=samples.mean(1).cpu(), std=samples.std(1).cpu(), samples=samples.cpu(), latent=mu.cpu(),
            noise={name: v.cpu() for name, v in noise.items()},
            tensors={**{name: v.cpu() for name, v in state.items()}, "samples_seed": seed_tensor},
            latent_std=marginal_std.cpu(), observation=y.cpu(),
            config={"extension_used": ext.config(), "sensor_sigma": sigma_n, "generator_weight_used": weight,
                    "likelihood_sigma_mean": float(sigma.mean())},
        )

    @torch.no_grad()
    def sample(self, mu: torch.Tensor, sig_q: torch.Tensor, factors: torch.Tensor, ext: Extension,
               noise: dict[str, torch.Tensor] | None, y: torch.Tensor, physics: Physics, tau2: torch.Tensor,
               gen: torch.Generator, weight: float = 1.0) -> torch.Tensor:
        """(N, S, C, H, W) posterior samples in [0, 1]: latents from q, rendered, made consistent
        (tau2 (N,): the residual's variance)."""
        cfg = self.cfg
        out = []
        for _ in range(cfg.num_samples):
            w = draw(mu, sig_q, factors, 1, gen)[0]
            x = ext.render(self.G, w, noise).clamp(0, 1)
            out.append(make_sample_consistent(x, y, physics, cfg.consistency, cfg.consistency_smoothness, tau2, gen,
                                              weight))
        return torch.stack(out, 1)


def continue_from(start: Reconstruction, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], Extension]:
    """(latent, noise maps, extension) of an earlier MAP result, on y's device; checks it restored this y."""
    if start.latent is None or start.latent.shape[0] != y.shape[0]:
        raise ValueError("the start result must be a MAP result of the same batch of observations")
    if start.observation is not None and not torch.equal(start.observation.to(y.device), y):
        raise ValueError("the start result restored another observation")
    dev = y.device
    ext = extension_from_state(start.config.get("extension_used"), {k: v.to(dev) for k, v in start.tensors.items()})
    return start.latent.to(dev), {k: v.to(dev) for k, v in start.noise.items()}, ext


def latent_posterior_energy(mean: torch.Tensor, std: torch.Tensor, sigma: torch.Tensor, *, perceptual: Any = None,
                            perceptual_weight: float = 0.0, cosine_weight: float = 0.0) -> LatentEnergy:
    """The latent posterior's energy shared by VI and MCMC: likelihood (std ``sigma`` per latent) + prior."""
    return LatentEnergy({"likelihood": 1.0, "prior": 1.0, "perceptual": perceptual_weight, "cosine": cosine_weight},
                        likelihood=GaussianLikelihood(sigma).to(sigma.device),
                        prior=DiagonalGaussianPrior(mean, std), perceptual=perceptual)


def generator_misfit(G: Generator, latent: torch.Tensor, noise: dict[str, torch.Tensor] | None, y: torch.Tensor,
                     physics: Physics, sigma: float, smoothness: float) -> torch.Tensor:
    """τ² (N,): the misfit variance the generator's own image (latent and noise maps, before range extension)
    leaves on y, which sets the spread of the pixel residual; before `measured_inflation`."""
    x_range = G.render(latent, noise=noise)
    return misfit_variance(y - physics.A(x_range), physics, x_range.shape, sigma, smoothness, estimate=x_range)


def make_sample_consistent(x: torch.Tensor, y: torch.Tensor, physics: Physics, kind: str, smoothness: float,
                           tau2: torch.Tensor, gen: torch.Generator, weight: float = 1.0) -> torch.Tensor:
    """One posterior sample's data consistency: "sample" draws the residual (variance tau2 (N,)) from its
    posterior, the other kinds are `apply_consistency`."""
    if kind != "sample":
        return apply_consistency(x, y, physics, kind, smoothness, weight)
    x = blend(x, y, physics, weight)
    return posterior_sample(x, y, physics, tau2=tau2, smoothness=smoothness, gen=gen).clamp(0, 1)


def draw(mu: torch.Tensor, sigma: torch.Tensor, factors: torch.Tensor, num: int,
         gen: torch.Generator) -> torch.Tensor:
    """(num, N, ...) latents from q = N(μ, diag σ² + U Uᵀ); μ, σ (N, ...), U (N, D, r)."""
    eps = torch.randn((num, *mu.shape), generator=gen, device=mu.device)
    w = mu + eps * sigma
    if factors.shape[-1]:
        eta = torch.randn((num, mu.shape[0], factors.shape[-1], 1), generator=gen, device=mu.device)
        w = w + (factors @ eta).view(num, *mu.shape)
    return w


def entropy(sigma: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Entropy of q up to a constant, (N,): Σ log σ + ½ log det(I + Uᵀ diag(σ⁻²) U)."""
    h = torch.log(sigma).flatten(1).sum(1)
    if factors.shape[-1]:
        scaled = factors / sigma.flatten(1)[..., None]
        eye = torch.eye(factors.shape[-1], device=factors.device)
        h = h + 0.5 * torch.logdet(eye + scaled.transpose(1, 2) @ scaled)
    return h


def sampling_state(G: Generator, rec: Reconstruction) -> dict[str, Any]:
    """What redrawing a posterior result's samples needs, on G's device: tensors, extension, physics, noise,
    observation and the seeded sample generator (shared by VI and MCMC renderers)."""
    from ..physics import physics_from_config

    dev = G.device
    t = {k: v.to(dev) for k, v in rec.tensors.items()}
    return {"t": t, "ext": extension_from_state(rec.config.get("extension_used"), t),
            "physics": physics_from_config(rec.config["physics"]).to(dev),
            "noise": {k: v.to(dev) for k, v in rec.noise.items()} or None, "y": rec.observation.to(dev),
            "gen": torch.Generator(device=dev).manual_seed(int(t["samples_seed"][0])),
            "weight": rec.config.get("generator_weight_used", 1.0)}


def render_vi(G: Generator, rec: Reconstruction) -> torch.Tensor:
    """Re-render a VI result's mean: redraw its samples from q with the saved sample seed."""
    s = sampling_state(G, rec)
    method = VariationalBRGM.__new__(VariationalBRGM)
    method.G, method.cfg = G, VIConfig(**{k: v for k, v in rec.config.items() if k in VIConfig.__dataclass_fields__})
    t = s["t"]
    samples = method.sample(rec.latent.to(G.device), t["latent_std_q"], t["latent_factors"], s["ext"], s["noise"],
                            s["y"], s["physics"], t["residual_tau2"], s["gen"], s["weight"])
    return samples.mean(1).cpu()


register_renderer(VariationalBRGM.name, render_vi)
