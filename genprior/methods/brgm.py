"""BRGM: maximum a posteriori restoration over a generator's latent, with range extension and data consistency.

One call runs up to three stages on a batch of independent images:

1. ``map``: fit the latent (W+ for StyleGAN2, z otherwise; and the StyleGAN2 noise maps with
   ``optimize_noise``) to the observation under the energy of `genprior.methods.energy.LatentEnergy`.
   The default (``objective="calibrated"``) is the Bayesian one: the Gaussian sensor likelihood
   ``Σ (f(G(w)) - y)² / (2 σ²)`` (σ: the physics' noise std, at least ``sigma_floor``), the per-dimension
   Gaussian prior of the latent, and a perceptual term. ``BRGM.official`` gives the official code's objective
   (pixel MSE, LPIPS, BRGM's scalar prior, colinearity; `official_weights`).
2. ``tune`` or ``ilo`` (``extension``): leave the generator's range, as real images need — low-rank pivotal
   tuning of the generator's weights, or an offset on an intermediate state (see `genprior.methods.extension`);
   the latent is kept as the pivot.
3. data consistency (``consistency``): the posterior mean of the truth given the generator's image and the
   observation (`genprior.physics.consistency.consistent`; in-painting keeps the observed pixels).

The result's ``mean`` is the final image, ``images["generated"]`` the generator's image before stage 3;
``latent``, ``noise`` and the extension's tensors re-render it exactly (``Reconstruction.render``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..generators import Generator
from ..losses import LPIPS, GaussianLikelihood, PerceptualDistance, perceptual_distance
from ..physics import Physics
from ..physics.consistency import blend, consistent
from ..priors import DiagonalGaussianPrior, GaussianPrior, LatentStats, latent_stats, normalise_noise_
from ..result import Reconstruction
from .base import History, Method, check_counts, register_renderer
from .energy import LatentEnergy
from .extension import Extension, FeatureOffset, LowRankTuning, NoExtension, extension_from_state
from .optim import minimise
from .trust import measured_weight

EXTENSIONS = ("none", "tune", "ilo")
CONSISTENCY = ("soft", "hard", "none")


def official_weights(task: str = "inpaint", factor: int = 1) -> dict[str, float]:
    """BRGM-PyTorch's λ's in genprior's units: pixel λ 0.001 on [0,255]² -> 0.001·255²; LPIPS·1.25 -> 1.25."""
    return {"pixel_weight": 0.001 * 255**2, "perceptual_weight": 1.25, "prior_weight": 100.0,
            "cosine_weight": 1.0 if task == "superres" and factor > 16 else 0.1}


@dataclass
class BRGMConfig:
    """Every setting of a MAP run (saved with each result)."""

    space: str = "w+"  # "w+", "w" (one row for all layers) or "z" (generators without a mapping)
    steps: int = 300
    lr: float = 0.05
    schedule: str = "cosine"  # "cosine" (warm-up + ramp-down) or "constant" (the official code)
    objective: str = "calibrated"  # "calibrated" (likelihood + per-dimension prior) or "official" (set by official)
    noise_sigma: float | None = None  # likelihood std; None: the physics' sigma
    sigma_floor: float = 0.01  # the smallest likelihood std (quantisation, compression, kernel misfit)
    likelihood_weight: float = 1.0
    anneal: float = 1.0  # the likelihood's σ starts at anneal·σ and decays geometrically to σ by mid-run (1: off)
    pixel_weight: float = 0.0
    perceptual_weight: float = 100.0
    prior_weight: float = 1.0
    cosine_weight: float = 0.0
    optimize_noise: bool = False  # StyleGAN2: fit the noise maps per image too
    noise_weight: float = 1e5  # weight of the noise autocorrelation penalty (NVIDIA's)
    extension: str = "tune"  # range extension after the latent fit: "none", "tune" (pivotal tuning), "ilo"
    tune_steps: int = 150
    tune_lr: float = 3e-3
    tune_rank: int = 8
    tune_locality: float = 1.0  # weight of the locality regulariser (images of other latents kept unchanged)
    locality_sigma: float = 0.05  # its tolerance in [0, 1] pixel units
    ilo_layer: int | None = None  # split point (StyleGAN2: block resolution; None: resolution / 4)
    ilo_steps: int = 150
    ilo_lr: float = 0.05
    ilo_radius: float = 1.0  # the offset's RMS at most this times the state's own RMS
    consistency: str = "soft"  # "soft" (noise-aware, smooth), "hard" (x + A⁺(y - Ax)) or "none"
    consistency_smoothness: float = 1.0  # width in pixels of the residual's smoothing covariance (soft)
    generator_weight: float | None = None  # share of the generator's image before consistency, the rest from the
    # data-only estimate (bicubic, mean fill, ...); None: the value measured for a shipped model and task
    # (`genprior.methods.trust`), else 1
    perceptual: str = "auto"  # "lpips" (exact, needs vgg16.pt), "vgg" (uniform weights), "auto" (lpips if cached)
    perceptual_size: int | None = None  # VGG input size; None: the observation's size, at least 32
    perceptual_resize: str = "auto"  # "auto" (area down, bilinear up) or "area" (the official: pixel repeats up)
    init_candidates: int = 8  # z space only: random starts tried, the best kept
    starts: int = 1  # latent fits from different starts (the mean latent, then mapped random z), best energy kept
    stats_samples: int = 10_000
    stats_seed: int = 123
    extra: dict[str, Any] = field(default_factory=dict)


def check_config(cfg: BRGMConfig, G: Generator) -> None:
    """ValueError naming the first bad setting."""
    if cfg.space not in ("w+", "w", "z"):
        raise ValueError(f"space must be 'w+', 'w' or 'z', not {cfg.space!r}")
    if cfg.space in ("w+", "w") and G.w_dim is None:
        raise ValueError(f"the {G.family} generator has no W space: use space='z'")
    if cfg.space == "z" and G.w_dim is not None:
        raise ValueError("space='z' is for generators without a mapping network; use 'w+' or 'w'")
    if cfg.optimize_noise and not G.noise_inputs():
        raise ValueError(f"optimize_noise needs a generator with noise inputs (StyleGAN2), not {G.family}")
    if cfg.extension not in EXTENSIONS:
        raise ValueError(f"extension must be one of {', '.join(EXTENSIONS)}, not {cfg.extension!r}")
    if cfg.consistency not in CONSISTENCY:
        raise ValueError(f"consistency must be one of {', '.join(CONSISTENCY)}, not {cfg.consistency!r}")
    check_counts(cfg, {"steps": 1, "tune_steps": 0, "ilo_steps": 0, "tune_rank": 1, "init_candidates": 1, "starts": 1})
    if cfg.noise_sigma is not None and not (cfg.noise_sigma > 0):
        raise ValueError(f"noise_sigma must be > 0, got {cfg.noise_sigma!r}")


class BRGM(Method):
    """MAP restoration: ``BRGM(G, steps=300)(y, physics, seed=0)`` -> `Reconstruction`.

    y: (N, C', H', W') in [0, 1], the observation on the forward model's grid; physics: a `Physics` with
    ``A(x)`` mapping generator images (N, C, R, R) in [0, 1] to that grid. Each image is an independent
    optimisation; the batch runs together. See the module docstring for the stages.
    """

    name = "brgm-map"

    def __init__(self, G: Generator, *, progress: bool = False, **config: Any) -> None:
        super().__init__(G, progress=progress)
        self.cfg = BRGMConfig(**config)
        check_config(self.cfg, G)
        self._stats: LatentStats | None = None
        self._perceptual: LPIPS | PerceptualDistance | None = None

    @classmethod
    def official(cls, G: Generator, task: str = "inpaint", factor: int = 1, **overrides: Any) -> "BRGM":
        """BRGM-PyTorch's settings: W+, 501 steps of Adam at a constant lr 0.1, its λ's (see `official_weights`),
        no range extension, no data consistency."""
        cfg = dict(space="w+", steps=501, lr=0.1, schedule="constant", perceptual_size=256, perceptual_resize="area",
                   objective="official", likelihood_weight=0.0, extension="none", consistency="none",
                   **official_weights(task, factor))
        cfg.update(overrides)
        return cls(G, **cfg)

    # ------------------------------------------------------------------ shared pieces
    @property
    def stats(self) -> LatentStats:
        if self._stats is None:
            self._stats = latent_stats(self.G, self.cfg.stats_samples, self.cfg.stats_seed)
        return self._stats

    @property
    def perceptual(self) -> LPIPS | PerceptualDistance:
        if self._perceptual is None:
            self._perceptual = perceptual_distance(self.cfg.perceptual, self.cfg.perceptual_size, self.G.device,
                                                   resize=self.cfg.perceptual_resize)
        return self._perceptual

    def sigma(self, physics: Physics) -> float:
        """The likelihood's noise std: ``noise_sigma`` or the physics' sigma, at least ``sigma_floor``."""
        sigma = self.cfg.noise_sigma if self.cfg.noise_sigma is not None else float(physics.sigma)
        return max(sigma, self.cfg.sigma_floor)

    def energy(self, physics: Physics, sigma: float | None = None) -> LatentEnergy:
        cfg = self.cfg
        st = self.stats
        prior = (DiagonalGaussianPrior(st.mean, st.std) if cfg.objective == "calibrated"
                 else GaussianPrior(st.mean, st.scale)).to(self.G.device)
        weights = {"likelihood": cfg.likelihood_weight, "pixel": cfg.pixel_weight, "prior": cfg.prior_weight,
                   "perceptual": cfg.perceptual_weight, "cosine": cfg.cosine_weight if cfg.space == "w+" else 0,
                   "noise": cfg.noise_weight if cfg.optimize_noise else 0}
        likelihood = GaussianLikelihood(self.sigma(physics) if sigma is None else sigma).to(self.G.device)
        return LatentEnergy(weights, likelihood=likelihood, prior=prior,
                            perceptual=self.perceptual if cfg.perceptual_weight else None)

    def y_features(self, y: torch.Tensor) -> Any:
        if not self.cfg.perceptual_weight:
            return None
        with torch.no_grad():
            return self.perceptual.features(y)

    def initial_latent(self, y: torch.Tensor, physics: Physics, energy: LatentEnergy, y_features: Any,
                       gen: torch.Generator) -> torch.Tensor:
        """The mean latent, (N, num_ws, D) for W+ and (N, D) for W, as BRGM starts.

        In z space the mean (z = 0) can be a dead point (DCGAN: every first-layer ReLU is off), so each
        image starts from the best of ``init_candidates`` seeded z ~ N(0, I) under the energy.
        """
        n, mean = y.shape[0], self.stats.mean
        if self.cfg.space == "w+":
            return mean.expand(n, self.G.num_ws, -1).clone()
        if self.cfg.space == "w":
            return mean.expand(n, -1).clone()
        k = self.cfg.init_candidates
        z = torch.randn(k, n, self.G.z_dim, generator=gen, device=y.device)
        with torch.no_grad():
            feats = None if y_features is None else [f.repeat(k, 1, 1, 1) for f in y_features]
            e, _ = energy(self.G.render(z.flatten(0, 1), clamp=False), z.flatten(0, 1), y.repeat(k, 1, 1, 1),
                          physics, y_features=feats)
        best = e.view(k, n).argmin(0)
        return z[best, torch.arange(n)].clone()

    def initial_noise(self, n: int) -> dict[str, torch.Tensor]:
        """The generator's constant noise maps, one copy per image: name -> (n, 1, R, R)."""
        return {name: m.detach().expand(n, 1, -1, -1).clone() for name, m in self.G.noise_inputs().items()}

    # ------------------------------------------------------------------ stages
    def fit_latent(self, y: torch.Tensor, physics: Physics, energy: LatentEnergy, y_features: Any,
                   gen: torch.Generator, history: History) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Stage ``map``: (latent, noise maps) minimising the energy; with ``starts`` > 1 several fits from
        different starts run as one batch and each image keeps its lowest final energy (multi-modal posteriors:
        a single start can settle in a poor mode)."""
        cfg = self.cfg
        n, k = y.shape[0], cfg.starts
        first = self.initial_latent(y, physics, energy, y_features, gen)
        latent = torch.cat([first] + [self._random_start(first, gen) for _ in range(k - 1)]).requires_grad_(True)
        noise = {key: v.repeat(k, 1, 1, 1).requires_grad_(True) for key, v in self.initial_noise(n).items()} \
            if cfg.optimize_noise else {}
        unknown = [p.requires_grad_(True) for p in physics.fit_parameters()]  # e.g. an "auto" blur kernel
        opt = torch.optim.Adam([latent, *noise.values(), *unknown], lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
        y_k = y.repeat(k, 1, 1, 1) if k > 1 else y
        feats = y_features if k == 1 or y_features is None else [f.repeat(k, 1, 1, 1) for f in y_features]

        def loss(step: int) -> tuple[torch.Tensor, dict]:
            x = self.G.render(latent, clamp=False, noise=noise or None)
            temper = cfg.anneal ** max(0.0, 1 - 2 * step / max(cfg.steps, 1))
            return energy(x, latent, y_k, physics, y_features=feats, noise=noise or None,
                          scale={"likelihood": temper ** -2})

        best_of = (lambda v: v.view(k, n).min(0).values) if k > 1 else None
        minimise(opt, loss, cfg.steps, history, stage="map", lr=cfg.lr, schedule=cfg.schedule,
                 progress=self.progress, after_step=lambda step: normalise_noise_(noise), per_image=best_of)
        for p in unknown:
            p.requires_grad_(False)
        latent, noise = latent.detach(), {key: v.detach() for key, v in noise.items()}
        if k == 1:
            return latent, noise
        with torch.no_grad():  # the final energies decide
            x = self.G.render(latent, clamp=False, noise=noise or None)
            e, _ = energy(x, latent, y_k, physics, y_features=feats, noise=noise or None)
        pick = e.view(k, n).argmin(0) * n + torch.arange(n, device=e.device)
        return latent[pick], {key: v[pick] for key, v in noise.items()}

    def _random_start(self, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A start other than the mean: a mapped random z (W / W+), or a random z."""
        n = like.shape[0]
        z = torch.randn(n, self.G.z_dim, generator=gen, device=like.device)
        if self.cfg.space == "z":
            return z
        with torch.no_grad():
            w = self.G.latent_from_z(z, truncation_psi=0.7)
        return w if self.cfg.space == "w+" else w[:, 0]

    def extend(self, latent: torch.Tensor, noise: dict[str, torch.Tensor], y: torch.Tensor, physics: Physics,
               energy: LatentEnergy, y_features: Any, gen: torch.Generator, history: History) -> Extension:
        """Stage ``tune`` / ``ilo``: the range extension around the fitted latent (kept fixed as the pivot)."""
        cfg = self.cfg
        if cfg.extension == "none" or (cfg.extension == "tune" and not cfg.tune_steps) or \
                (cfg.extension == "ilo" and not cfg.ilo_steps):
            return NoExtension()
        data_terms = {k: v for k, v in energy.weights.items() if k in ("likelihood", "pixel", "perceptual")}
        data = LatentEnergy(data_terms, likelihood=energy.likelihood, perceptual=energy.perceptual)
        noise_arg = noise or None
        if cfg.extension == "ilo":
            ext: Extension = FeatureOffset.start(self.G, latent, self.ilo_layer(), noise_arg)
            ext.offset.requires_grad_(True)
            opt = torch.optim.Adam(ext.parameters(), lr=cfg.ilo_lr)

            def loss(step: int) -> tuple[torch.Tensor, dict]:
                return data(ext.render(self.G, latent, noise_arg), latent, y, physics, y_features=y_features)

            minimise(opt, loss, cfg.ilo_steps, history, stage="ilo", lr=cfg.ilo_lr, schedule=cfg.schedule,
                     progress=self.progress,
                     after_step=lambda step: ext.project_(self.G, latent, cfg.ilo_radius, noise_arg))
            return ext.detach()
        ext = LowRankTuning.start(self.G, y.shape[0], cfg.tune_rank, gen)
        params = [p.requires_grad_(True) for p in ext.parameters()]
        opt = torch.optim.Adam(params, lr=cfg.tune_lr)
        z_dim = self.G.z_dim

        def loss(step: int) -> tuple[torch.Tensor, dict]:
            e, terms = data(ext.render(self.G, latent, noise_arg), latent, y, physics, y_features=y_features)
            if cfg.tune_locality:
                other = self._locality_latent(latent, z_dim, gen)
                with torch.no_grad():
                    ref = self.G.render(other, clamp=False, noise=noise_arg)
                drift = (ext.render(self.G, other, noise_arg) - ref).flatten(1).square().sum(1)
                terms["locality"] = drift / (2 * cfg.locality_sigma ** 2)
                e = e + cfg.tune_locality * terms["locality"]
            return e, terms

        minimise(opt, loss, cfg.tune_steps, history, stage="tune", lr=cfg.tune_lr, schedule=cfg.schedule,
                 progress=self.progress)
        return ext.detach()

    def _locality_latent(self, pivot: torch.Tensor, z_dim: int, gen: torch.Generator) -> torch.Tensor:
        """A latent between the pivot and a random one (PTI's locality regulariser samples), per image."""
        n = pivot.shape[0]
        with torch.no_grad():
            z = torch.randn(n, z_dim, generator=gen, device=pivot.device)
            other = self.G.latent_from_z(z) if self.cfg.space != "z" else z
            if self.cfg.space == "w":
                other = other[:, 0]
            t = torch.rand(n, *([1] * (pivot.ndim - 1)), generator=gen, device=pivot.device)
            return pivot + t * (other - pivot)

    def ilo_layer(self) -> int:
        if self.cfg.ilo_layer is not None:
            return self.cfg.ilo_layer
        return max(4, self.G.resolution // 4) if self.G.w_dim is not None else 3

    def generator_weight(self, physics: Physics) -> float:
        """The blend weight used: the setting, else the measured one for this shipped model and task, else 1."""
        if self.cfg.generator_weight is not None:
            return float(self.cfg.generator_weight)
        return measured_weight(self.G, physics)

    def make_consistent(self, x: torch.Tensor, y: torch.Tensor, physics: Physics) -> torch.Tensor:
        """Stage 3 on generator images x (N, C, R, R) in [0, 1] -> (N, C, R, R) in [0, 1]."""
        return apply_consistency(x, y, physics, self.cfg.consistency, self.cfg.consistency_smoothness,
                                 self.generator_weight(physics))

    # ------------------------------------------------------------------ the call
    def total_steps(self) -> int:
        cfg = self.cfg
        extra = {"none": 0, "tune": cfg.tune_steps, "ilo": cfg.ilo_steps}[cfg.extension]
        return cfg.steps + extra

    def fit(self, y: torch.Tensor, physics: Physics, gen: torch.Generator, history: History
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Extension]:
        """Stages 1 and 2: (latent, noise, extension)."""
        energy = self.energy(physics)
        y_features = self.y_features(y)
        latent, noise = self.fit_latent(y, physics, energy, y_features, gen, history)
        ext = self.extend(latent, noise, y, physics, energy, y_features, gen, history)
        return latent, noise, ext

    def run(self, y: torch.Tensor, physics: Physics, gen: torch.Generator, history: History,
            start: Reconstruction | None = None) -> Reconstruction:
        latent, noise, ext = self.fit(y, physics, gen, history)
        with torch.no_grad():
            generated = ext.render(self.G, latent, noise or None).clamp(0, 1)
            misfit = range_misfit(self.G, latent, noise, y, physics)
        warn_if_far(misfit, y)
        mean = self.make_consistent(generated, y, physics)
        return Reconstruction(
            mean=mean.cpu(), latent=latent.cpu(), observation=y.cpu(),
            noise={k: v.cpu() for k, v in noise.items()},
            tensors={k: v.cpu() for k, v in ext.state().items()},
            images={"generated": generated.cpu()},
            config={"extension_used": ext.config(), "likelihood_sigma": self.sigma(physics),
                    "generator_weight_used": self.generator_weight(physics), "range_misfit_rms": misfit.tolist(),
                    "perceptual_used": self.perceptual.kind if self.cfg.perceptual_weight else None},
        )


FAR = 0.15  # a range misfit (RMS on the observation grid, [0, 1] units) beyond this is "far from the generator"


def range_misfit(G: Generator, latent: torch.Tensor, noise: dict[str, torch.Tensor], y: torch.Tensor,
                 physics: Physics) -> torch.Tensor:
    """RMS of ``A G(w) - y`` per image (N,) for the fitted latent alone (no range extension): how far the
    observation is from anything the generator makes."""
    x = G.render(latent, noise=noise or None)
    return (physics.A(x) - y).flatten(1).square().mean(1).sqrt()


def warn_if_far(misfit: torch.Tensor, y: torch.Tensor) -> None:
    """A warning when an observation is far from the generator's range (the restoration then leans on the data)."""
    import warnings

    far = [i for i, m in enumerate(misfit.tolist()) if m > FAR]
    if far:
        worst = max(misfit.tolist())
        warnings.warn(f"the observation{'s' if len(far) > 1 else ''} {far if len(far) > 1 else far[0]} "
                      f"{'are' if len(far) > 1 else 'is'} far from anything this generator makes (misfit RMS "
                      f"{worst:.3f} > {FAR}); the restoration leans on the data, and a prior trained on such "
                      "images would help", stacklevel=3)


def apply_consistency(x: torch.Tensor, y: torch.Tensor, physics: Physics, kind: str, smoothness: float,
                      weight: float = 1.0) -> torch.Tensor:
    """Data consistency of kind "soft" / "hard" / "none" on images in [0, 1] -> [0, 1], after blending ``weight``
    of x with the data-only estimate (`genprior.physics.consistency.blend`)."""
    x = blend(x, y, physics, weight)
    if kind == "none":
        return x
    if kind == "hard":
        return consistent(x, y, physics, sigma=0.0, smoothness=0.0).clamp(0, 1)
    return consistent(x, y, physics, smoothness=smoothness).clamp(0, 1)


def render_map(G: Generator, rec: Reconstruction) -> torch.Tensor:
    """Re-render a MAP result: the generator image from latent, noise and extension, then its consistency."""
    from ..physics import physics_from_config

    cfg = rec.config
    ext = extension_from_state(cfg.get("extension_used"), {k: v.to(G.device) for k, v in rec.tensors.items()})
    noise = {k: v.to(G.device) for k, v in rec.noise.items()} or None
    with torch.no_grad():
        generated = ext.render(G, rec.latent.to(G.device), noise).clamp(0, 1)
        if rec.observation is None:
            return generated.cpu()
        physics = physics_from_config(cfg["physics"]).to(G.device)
        return apply_consistency(generated, rec.observation.to(G.device), physics, cfg["consistency"],
                                 cfg.get("consistency_smoothness", 1.0), cfg.get("generator_weight_used", 1.0)).cpu()


register_renderer(BRGM.name, render_map)
