"""BRGM: maximum a posteriori restoration over a frozen generator's latent.

Minimises, per image, ``E(w) = a·P + b·Q + c·R + d·C`` over the latent w, where (images in [0, 1])

* P = mean squared error between f(G(w)) and y on the observation's grid,
* Q = perceptual distance between f(G(w)) and y: exact LPIPS-VGG16 when NVIDIA's ``vgg16.pt`` is in the
  cache, else the uniform-weight VGG16 distance (`genprior.losses.perceptual_distance`, ``perceptual``),
* R = Gaussian prior around the mean latent (`genprior.priors.GaussianPrior`),
* C = colinearity of the W+ rows (`genprior.priors.cosine_prior`), W+ only,
* N = autocorrelation of the StyleGAN2 noise maps (`genprior.priors.noise_autocorrelation`), only with
  ``optimize_noise=True``: the maps start at the generator's constant noise, are fitted per image with the
  latent, and renormalised after every step, as NVIDIA's projector does (BRGM.md §11.3).

``official_weights()`` converts the official code's λ's (defined on [0, 255] images) into these units.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

from ..generators import Generator
from ..losses import LPIPS, PerceptualDistance, perceptual_distance, pixel_mse
from ..priors import GaussianPrior, LatentStats, cosine_prior, latent_stats, noise_autocorrelation, normalise_noise_
from ..result import Reconstruction
from .optim import minimise


def official_weights(task: str = "inpaint", factor: int = 1) -> dict[str, float]:
    """BRGM-PyTorch's λ's in genprior's units: pixel λ 0.001 on [0,255]² -> 0.001·255²; LPIPS·1.25 -> 1.25."""
    return {"pixel_weight": 0.001 * 255**2, "perceptual_weight": 1.25, "prior_weight": 100.0,
            "cosine_weight": 1.0 if task == "superres" and factor > 16 else 0.1}


@dataclass
class BRGMConfig:
    """Every setting of a MAP run (saved with each result)."""

    space: str = "w+"  # "w+", "w" (one row for all layers) or "z" (generators without a mapping)
    steps: int = 300
    lr: float = 0.1
    schedule: str = "cosine"  # "cosine" (warm-up + ramp-down) or "constant" (the official code)
    pixel_weight: float = 0.001 * 255**2
    perceptual_weight: float = 1.25
    prior_weight: float = 100.0
    cosine_weight: float = 0.1
    optimize_noise: bool = False  # StyleGAN2: fit the noise maps per image too
    noise_weight: float = 1e5  # weight of the noise autocorrelation penalty (NVIDIA's)
    perceptual: str = "auto"  # "lpips" (exact, needs vgg16.pt), "vgg" (uniform weights), "auto" (lpips if cached)
    perceptual_size: int | None = None  # VGG input size; None: the observation's size, at least 32
    perceptual_resize: str = "auto"  # "auto" (area down, bilinear up) or "area" (the official: pixel repeats up)
    init_candidates: int = 8  # z space only: random starts tried, the best kept
    stats_samples: int = 10_000
    stats_seed: int = 123
    extra: dict[str, Any] = field(default_factory=dict)


class BRGM:
    """MAP restoration: ``BRGM(G, steps=300)(y, physics, seed=0)`` -> `Reconstruction`.

    y: (N, C', H', W') in [0, 1], the observation on the forward model's grid; physics: a module with
    ``A(x)`` mapping generator images (N, C, R, R) in [0, 1] to that grid. Each image is an independent
    optimisation; the batch runs together.
    """

    def __init__(self, G: Generator, *, progress: bool = False, **config: Any) -> None:
        self.G = G
        self.cfg = BRGMConfig(**config)
        if self.cfg.space not in ("w+", "w", "z"):
            raise ValueError(f"space must be 'w+', 'w' or 'z', not {self.cfg.space!r}")
        if self.cfg.space in ("w+", "w") and G.w_dim is None:
            raise ValueError(f"the {G.family} generator has no W space: use space='z'")
        if self.cfg.space == "z" and G.w_dim is not None:
            raise ValueError("space='z' is for generators without a mapping network; use 'w+' or 'w'")
        if self.cfg.optimize_noise and not hasattr(getattr(G, "synthesis", None), "noise_shapes"):
            raise ValueError(f"optimize_noise needs a generator with noise inputs (StyleGAN2), not {G.family}")
        self.progress = progress
        self._stats: LatentStats | None = None
        self._prior: GaussianPrior | None = None
        self._perceptual: LPIPS | PerceptualDistance | None = None

    @classmethod
    def official(cls, G: Generator, task: str = "inpaint", factor: int = 1, **overrides: Any) -> "BRGM":
        """BRGM-PyTorch's settings: W+, 501 steps of Adam at a constant lr 0.1, its λ's (see `official_weights`)."""
        cfg = dict(space="w+", steps=501, lr=0.1, schedule="constant", perceptual_size=256,
                   perceptual_resize="area",
                   **official_weights(task, factor))
        cfg.update(overrides)
        return cls(G, **cfg)

    @property
    def stats(self) -> LatentStats:
        if self._stats is None:
            self._stats = latent_stats(self.G, self.cfg.stats_samples, self.cfg.stats_seed)
        return self._stats

    @property
    def prior(self) -> GaussianPrior:
        if self._prior is None:
            self._prior = GaussianPrior(self.stats.mean, self.stats.scale)
        return self._prior

    @property
    def perceptual(self) -> LPIPS | PerceptualDistance:
        if self._perceptual is None:
            self._perceptual = perceptual_distance(self.cfg.perceptual, self.cfg.perceptual_size, self.G.device,
                                                   resize=self.cfg.perceptual_resize)
        return self._perceptual

    def initial_latent(self, y: torch.Tensor, physics: torch.nn.Module, y_features: Any) -> torch.Tensor:
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
        z = torch.randn(k, n, self.G.z_dim, device=y.device)
        with torch.no_grad():
            feats = None if y_features is None else [f.repeat(k, 1, 1, 1) for f in y_features]
            e, _ = self.energy(z.flatten(0, 1), y.repeat(k, 1, 1, 1), physics, feats)
        best = e.view(k, n).argmin(0)
        return z[best, torch.arange(n)].clone()

    def initial_noise(self, n: int) -> dict[str, torch.Tensor]:
        """The generator's constant noise maps, one copy per image: name -> (n, 1, R, R)."""
        synthesis = self.G.synthesis  # type: ignore[attr-defined]
        return {name: synthesis.get_submodule(name).noise_const.detach().expand(n, 1, -1, -1).clone()
                for name in synthesis.noise_shapes()}

    def energy(self, latent: torch.Tensor, y: torch.Tensor, physics: torch.nn.Module,
               y_features: list[torch.Tensor] | None,
               noise: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-image energy (N,) and its terms; latent as ``initial_latent`` returns it, noise as
        ``initial_noise`` (None: the generator's constant noise)."""
        cfg = self.cfg
        x = self.G.render(latent, clamp=False, noise=noise)
        fx = physics.A(x)
        terms = {"pixel": pixel_mse(fx, y)}
        if cfg.perceptual_weight:
            terms["perceptual"] = self.perceptual(fx, y_features)
        if cfg.prior_weight:
            terms["prior"] = self.prior(latent)
        if cfg.cosine_weight and cfg.space == "w+":
            terms["cosine"] = cosine_prior(latent)
        if noise:
            terms["noise"] = noise_autocorrelation(noise)
        weights = {"pixel": cfg.pixel_weight, "perceptual": cfg.perceptual_weight, "prior": cfg.prior_weight,
                   "cosine": cfg.cosine_weight, "noise": cfg.noise_weight}
        return sum(weights[k] * v for k, v in terms.items()), terms

    def __call__(self, y: torch.Tensor, physics: torch.nn.Module, *, seed: int = 0,
                 callback: Callable[[int, torch.Tensor, dict], None] | None = None) -> Reconstruction:
        cfg = self.cfg
        if not torch.isfinite(y).all():
            raise ValueError("the observation contains NaN or infinite values")
        torch.manual_seed(seed)
        y = y.to(self.G.device).float()
        with torch.no_grad():
            y_features = self.perceptual.features(y) if cfg.perceptual_weight else None
        latent = self.initial_latent(y, physics, y_features).requires_grad_(True)
        noise = {k: v.requires_grad_(True) for k, v in self.initial_noise(y.shape[0]).items()} \
            if cfg.optimize_noise else {}
        opt = torch.optim.Adam([latent, *noise.values()], lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
        start = time.perf_counter()

        def on_step(step: int, energy: torch.Tensor, terms: dict) -> None:
            normalise_noise_(noise)
            if callback is not None:
                callback(step, latent.detach(), {k: v.detach() for k, v in terms.items()})

        history = minimise(opt, lambda: self.energy(latent, y, physics, y_features, noise or None), cfg.steps,
                           lr=cfg.lr, schedule=cfg.schedule, desc="BRGM MAP", progress=self.progress,
                           on_step=on_step)
        latent = latent.detach()
        noise = {k: v.detach() for k, v in noise.items()}
        with torch.no_grad():
            mean = self.G.render(latent, noise=noise or None)
        return Reconstruction(
            mean=mean.cpu(), latent=latent.cpu(), observation=y.cpu(), seed=seed,
            noise={k: v.cpu() for k, v in noise.items()},
            config={"method": "brgm-map", **asdict(cfg), "generator": self.G.config,
                    "perceptual_used": self.perceptual.kind if cfg.perceptual_weight else None,
                    "physics": getattr(physics, "config", lambda: {"name": type(physics).__name__})()},
            history={"energy": history, "seconds": time.perf_counter() - start},
        )
