"""mGANprior: multi-code GAN inversion with adaptive channel importance (Gu, Shen & Zhou, CVPR 2020).

The generator is split at composing layer k into G1 (head) and G2 (tail). N latent codes give N feature
maps F_n = G1(z_n); a per-code, per-channel importance α_n (C_k,) composes them:

    x = G2( (1/N) · Σ_n F_n ⊙ α_n )

and {z_n, α_n} are fitted so that the degraded x matches the observation under
``pixel_weight · MSE + vgg_weight · 0.001 · L1(VGG16 relu3_3)`` (the official loss, with the official ×0.001).
Any generator with ``split(k)`` works (PGGAN, DCGAN).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from ..generators import Generator
from ..losses import VGG16Features
from ..result import Reconstruction
from .optim import minimise

# Official BIGPrior / mGANprior settings per task (BIGPRIOR.md §2.4): composing layer, codes, iterations, VGG λ.
PRESETS: dict[str, dict[str, Any]] = {
    "colorize": {"layer": 6, "codes": 20, "steps": 1500, "vgg_weight": 1.0},
    "inpaint": {"layer": 4, "codes": 30, "steps": 3000, "vgg_weight": 0.1},
    "denoise": {"layer": 4, "codes": 30, "steps": 3000, "vgg_weight": 0.1},
    "superres": {"layer": 6, "codes": 30, "steps": 2000, "vgg_weight": 1.0},
}


@dataclass
class MGANPriorConfig:
    layer: int = 4
    codes: int = 20
    steps: int = 1500
    lr: float = 0.05
    optimizer: str = "adam"  # "adam", or "sgd" (official: plain gradient descent at lr 1)
    pixel_weight: float = 1.0
    vgg_weight: float = 1.0


class MGANPrior:
    """``MGANPrior(G, layer=4, codes=20)(y, physics, seed=0)`` -> `Reconstruction` (``mean`` = the inversion).

    The result's ``tensors`` hold the codes ``z`` (N, codes, z_dim) and importances ``alpha`` (N, codes, C_k).
    """

    def __init__(self, G: Generator, *, progress: bool = False, **config: Any) -> None:
        self.G = G
        self.cfg = MGANPriorConfig(**config)
        if self.cfg.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', not {self.cfg.optimizer!r}")
        self.head, self.tail = G.split(self.cfg.layer)
        self.progress = progress
        self._vgg: VGG16Features | None = None

    @classmethod
    def preset(cls, G: Generator, task: str, *, official: bool = False, **overrides: Any) -> "MGANPrior":
        """The official layer, codes, steps and VGG weight for ``task`` (colorize, inpaint, denoise, superres).

        ``official=True`` also takes the official optimiser (SGD, lr 1); the default keeps Adam (lr 0.05),
        which converges on generators without PGGAN's scale-invariant PixelNorm (DCGAN) too.
        """
        if task not in PRESETS:
            raise ValueError(f"no mGANprior preset for task {task!r}; known: {sorted(PRESETS)}")
        optim = {"optimizer": "sgd", "lr": 1.0} if official else {}
        return cls(G, **{**PRESETS[task], **optim, **overrides})

    def vgg_relu3_3(self, x: torch.Tensor) -> torch.Tensor:
        if self._vgg is None:
            self._vgg = VGG16Features.pretrained(self.G.device)
        return self._vgg(x)[2]

    def compose(self, z: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Images (N, C, R, R) in about [0, 1] (unclamped) from z (N, codes, z_dim) and alpha (N, codes, C_k)."""
        n, codes = z.shape[:2]
        feats = self.head(z.flatten(0, 1))
        feats = feats.view(n, codes, *feats.shape[1:])
        composed = (feats * alpha[..., None, None]).sum(1) / codes
        return (self.tail(composed) + 1) * 0.5

    def loss(self, x: torch.Tensor, y: torch.Tensor, physics: torch.nn.Module,
             y_vgg: torch.Tensor | None) -> torch.Tensor:
        fx = physics.A(x)
        out = self.cfg.pixel_weight * (fx - y).flatten(1).square().mean(1)
        if self.cfg.vgg_weight:
            out = out + self.cfg.vgg_weight * 0.001 * (self.vgg_relu3_3(fx) - y_vgg).abs().flatten(1).mean(1)
        return out

    def __call__(self, y: torch.Tensor, physics: torch.nn.Module, *, seed: int = 0,
                 callback: Callable[[int, torch.Tensor], None] | None = None) -> Reconstruction:
        cfg = self.cfg
        if not torch.isfinite(y).all():
            raise ValueError("the observation contains NaN or infinite values")
        y = y.to(self.G.device).float()
        n = y.shape[0]
        gen = torch.Generator(device=y.device).manual_seed(seed)
        z = torch.randn(n, cfg.codes, self.G.z_dim, generator=gen, device=y.device).requires_grad_(True)
        channels = self.head(z[0, :1].detach()).shape[1]
        alpha = torch.full((n, cfg.codes, channels), 1.0 / cfg.codes, device=y.device).requires_grad_(True)
        params = [z, alpha]
        opt = torch.optim.SGD(params, lr=cfg.lr) if cfg.optimizer == "sgd" else torch.optim.Adam(params, lr=cfg.lr)
        with torch.no_grad():
            y_vgg = self.vgg_relu3_3(y) if cfg.vgg_weight else None
        start = time.perf_counter()
        history = minimise(opt, lambda: (self.loss(self.compose(z, alpha), y, physics, y_vgg), None), cfg.steps,
                           desc="mGANprior", progress=self.progress,
                           on_step=None if callback is None else (lambda step, loss, _: callback(step, loss)))
        with torch.no_grad():
            x = self.compose(z, alpha).clamp(0, 1)
        return Reconstruction(
            mean=x.cpu(), observation=y.cpu(), seed=seed,
            tensors={"z": z.detach().cpu(), "alpha": alpha.detach().cpu()},
            config={"method": "mganprior", **asdict(cfg), "generator": self.G.config,
                    "physics": getattr(physics, "config", lambda: {"name": type(physics).__name__})()},
            history={"loss": history, "seconds": time.perf_counter() - start},
        )
