"""mGANprior: multi-code GAN inversion with adaptive channel importance (Gu, Shen & Zhou, CVPR 2020).

The generator is split at composing layer k into G1 (head) and G2 (tail). N latent codes give N feature
maps F_n = G1(z_n); a per-code, per-channel importance α_n (C_k,) composes them:

    x = G2( (1/N) · Σ_n F_n ⊙ α_n )

and {z_n, α_n} are fitted so that the degraded x matches the observation under
``pixel_weight · MSE + vgg_weight · 0.001 · L1(VGG16 relu3_3)`` (the official loss, with the official ×0.001).
Any generator with ``split(k)`` works (PGGAN, DCGAN, StyleGAN2).

StyleGAN2 (generators with a W space) differs in three ways:

* **Codes live in W** (w_dim), one w per code repeated over the head's rows, initialised as the mapping of
  seeded z ~ N(0, I). W is the usual StyleGAN inversion space: z through the mapping would keep the codes on
  the learnt W distribution, but puts the mapping MLP in every gradient step and is harder to optimise
  (the mapping squeezes and bends z); the W+ codes of BRGM in this package live in W too.
* **k is a block resolution** (4, 8, ..., R/2): the head renders blocks b4..b<k> from each code, F_n is block
  k's state (N, C_k + img_channels, k, k) = its features with the skip-branch image so far appended as extra
  channels. These image channels are composed like every other channel, with their own per-code importance
  (the image is part of the state the next block continues from, so it is treated as features; this keeps
  ``compose`` identical for every family and, for one code with α = 1, reproduces the generator exactly).
* **The tail needs W rows** for blocks > k: one extra tail code w_tail (N, w_dim), repeated over those rows,
  is fitted too, initialised as the mean of the initial codes (for one code: that code, so the inversion
  starts at the generator's image). α starts at 1 rather than 1/N: without PGGAN's PixelNorm the scale of the
  composed feature matters, and α = 1 starts it at the mean of the codes' features. Noise is ``const``.

The presets give the official PGGAN composing-layer indices; for StyleGAN2 they become the block resolution
PGGAN's composing feature has at that index (`preset_layer`: 4 -> 8x8, 6 -> 16x16), capped at R/2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..generators import Generator
from ..losses import VGG16Features
from ..physics import Physics
from ..result import Reconstruction
from .base import History, Method, check_counts, register_renderer
from .optim import Plateau, minimise

# Official BIGPrior / mGANprior settings per task (BIGPRIOR.md §2.4): composing layer, codes, iterations, VGG λ.
PRESETS: dict[str, dict[str, Any]] = {
    "colorize": {"layer": 6, "codes": 20, "steps": 1500, "vgg_weight": 1.0},
    "inpaint": {"layer": 4, "codes": 30, "steps": 3000, "vgg_weight": 0.1},
    "denoise": {"layer": 4, "codes": 30, "steps": 3000, "vgg_weight": 0.1},
    "superres": {"layer": 6, "codes": 30, "steps": 2000, "vgg_weight": 1.0},
}
# genprior's default: 10 codes, 300 Adam steps at lr 0.1. On faces64 denoising (σ 0.1, 2 real held-out faces, one
# CPU thread) it gives 24.25 / 21.81 dB in about a tenth of the official preset's time (30 codes, 3,000 steps:
# 24.58 dB on the first face); 30 codes and 200 steps at lr 0.05 gave 24.06 / 20.26.
FAST: dict[str, Any] = {"codes": 10, "steps": 300, "lr": 0.1}


@dataclass
class MGANPriorConfig:
    layer: int = 4
    codes: int = 20
    steps: int = 1500
    lr: float = 0.05
    optimizer: str = "adam"  # "adam", or "sgd" (official: plain gradient descent at lr 1)
    pixel_weight: float = 1.0
    vgg_weight: float = 1.0
    init: str = "random"  # "random" (official), or "best": the best `candidates` single codes for each image
    candidates: int = 256
    start: str = "mean"  # init="best": compose the best codes' mean ("mean") or start at the best one ("best")
    tol: float = 0.0  # > 0: stop once no image's loss fell by more than this fraction over `patience` steps
    patience: int = 25


def preset_layer(G: Generator, k: int) -> int:
    """The composing layer for ``G`` from an official PGGAN composing index ``k`` (BIGPRIOR.md §2.1).

    PGGAN and DCGAN: ``k`` itself. StyleGAN2: the block resolution of PGGAN's composing feature at ``k``,
    ``2 ** (k // 2 + 1)`` (2 -> 4, 4 -> 8, 6 -> 16, 8 -> 32), capped at ``G.resolution // 2``; so a 64-px
    generator composes at 8x8 for in-painting and denoising and at 16x16 for colorization, as PGGAN does.
    """
    if G.w_dim is None:
        return k
    return min(2 ** (k // 2 + 1), G.resolution // 2)


class MGANPrior(Method):
    """``MGANPrior(G, layer=4, codes=20)(y, physics, seed=0)`` -> `Reconstruction` (``mean`` = the inversion).

    ``layer`` is ``G.split``'s k: a module index for PGGAN / DCGAN, a block resolution for StyleGAN2.
    The result's ``tensors`` hold the importances ``alpha`` (N, codes, C_k) and the codes: ``z``
    (N, codes, z_dim) for PGGAN / DCGAN; ``w`` (N, codes, w_dim) and the tail code ``w_tail`` (N, w_dim) for
    StyleGAN2 (C_k then includes the skip image's channels).
    """

    name = "mganprior"

    def __init__(self, G: Generator, *, progress: bool = False, **config: Any) -> None:
        super().__init__(G, progress=progress)
        self.cfg = MGANPriorConfig(**config)
        if self.cfg.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', not {self.cfg.optimizer!r}")
        check_counts(self.cfg, {"steps": 1, "codes": 1, "candidates": self.cfg.codes, "patience": 1})
        for name, known in (("init", ("random", "best")), ("start", ("mean", "best"))):
            if getattr(self.cfg, name) not in known:
                raise ValueError(f"{name} must be one of {known}, not {getattr(self.cfg, name)!r}")
        if not self.cfg.tol >= 0:
            raise ValueError(f"tol must be >= 0 (0: run every step), not {self.cfg.tol!r}")
        self.space = "w" if G.w_dim is not None else "z"  # where the codes live
        if getattr(G, "c_dim", 0):
            raise ValueError("mGANprior does not support conditional generators (c_dim > 0)")
        self.head, self.tail = G.split(self.cfg.layer)
        for part in (self.head, self.tail):  # StyleGAN2: one shared convolution for the batch of codes
            if hasattr(part, "fused_modconv"):
                part.fused_modconv = False
        self._vgg: VGG16Features | None = None

    def total_steps(self) -> int:
        return self.cfg.steps

    @classmethod
    def preset(cls, G: Generator, task: str, *, official: bool = False, **overrides: Any) -> "MGANPrior":
        """The settings for ``task`` (colorize, inpaint, denoise, superres): the official layer and VGG weight,
        with `FAST` codes, steps and learning rate (Adam); ``official=True``: the official codes, steps and
        optimiser (plain gradient descent, lr 1), for parity with the official code.

        The preset layer is translated for ``G`` by `preset_layer`; a ``layer`` override is used as given.
        """
        if task not in PRESETS:
            raise ValueError(f"no mGANprior preset for task {task!r}; known: {sorted(PRESETS)}")
        preset = {**PRESETS[task], "layer": preset_layer(G, PRESETS[task]["layer"])}
        speed = {"optimizer": "sgd", "lr": 1.0} if official else FAST
        return cls(G, **{**preset, **speed, **overrides})

    def vgg_relu3_3(self, x: torch.Tensor) -> torch.Tensor:
        if self._vgg is None:
            self._vgg = VGG16Features.pretrained(self.G.device)
        return self._vgg(x)[2]

    def compose(self, z: torch.Tensor, alpha: torch.Tensor, w_tail: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, C, R, R) in about [0, 1] (unclamped) from codes and importances alpha (N, codes, C_k).

        z: codes (N, codes, z_dim), or (N, codes, w_dim) in W for StyleGAN2. w_tail (N, w_dim), StyleGAN2
        only: the W code of the blocks after k; None takes the mean of the codes.
        """
        n, codes = z.shape[:2]
        feats = self.head(z.flatten(0, 1))
        feats = feats.view(n, codes, *feats.shape[1:])
        composed = (feats * alpha[..., None, None]).sum(1) / codes
        if self.space == "z":
            return (self.tail(composed) + 1) * 0.5
        return (self.tail(composed, z.mean(1) if w_tail is None else w_tail) + 1) * 0.5

    def init_codes(self, n: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Initial leaf tensors: ``z`` (n, codes, z_dim) ~ N(0, I) and ``alpha`` = 1/codes; for StyleGAN2
        ``w`` = mapping(z) (n, codes, w_dim), ``w_tail`` = their mean (n, w_dim) and ``alpha`` = 1."""
        cfg = self.cfg
        gen = torch.Generator(device=device).manual_seed(seed)
        z = torch.randn(n, cfg.codes, self.G.z_dim, generator=gen, device=device)
        if self.space == "z":
            codes = {"z": z}
        else:
            with torch.no_grad():
                w = self.G.mapping(z.flatten(0, 1))[:, 0].view(n, cfg.codes, -1)  # type: ignore[operator]
            codes = {"w": w, "w_tail": w.mean(1)}
        first = next(iter(codes.values()))
        with torch.no_grad():
            channels = self.head(first[0, :1]).shape[1]
        alpha = torch.full((n, cfg.codes, channels), 1.0 / cfg.codes if self.space == "z" else 1.0, device=device)
        return {k: v.clone().requires_grad_(True) for k, v in {**codes, "alpha": alpha}.items()}

    def best_start(self, y: torch.Tensor, physics: Physics, params: dict[str, torch.Tensor], seed: int) -> None:
        """Replace the random codes by the ``codes`` best of ``candidates`` random single codes for each image.

        Each candidate z ~ N(0, I) (StyleGAN2: w = mapping(z)) is rendered alone (α = 1, its own tail code) and
        scored by the pixel term on y; image i starts from its best candidates. ``start="mean"``: α = 1
        (StyleGAN2) or 1/N, the composed feature is their mean and the tail code the best one; ``"best"``: the
        best candidate's image exactly (its α = N, the others' 0).
        """
        cfg = self.cfg
        gen = torch.Generator(device=y.device).manual_seed(seed + 1)
        with torch.no_grad():
            z = torch.randn(cfg.candidates, self.G.z_dim, generator=gen, device=y.device)
            cand = z if self.space == "z" else self.G.mapping(z)[:, 0]  # type: ignore[operator]
            scores = []
            for chunk in cand.split(64):
                one = torch.ones(chunk.shape[0], 1, params["alpha"].shape[-1], device=y.device)
                fx = physics.A(self.compose(chunk[:, None], one, chunk if self.space == "w" else None))
                scores.append((fx[:, None] - y[None]).flatten(2).square().mean(2))  # (chunk, n)
            best = torch.cat(scores).argsort(0)[: cfg.codes].T  # (n, codes), best first
            params[self.space].copy_(cand[best])
            if self.space == "w":
                params["w_tail"].copy_(cand[best[:, 0]])
            if cfg.start == "best":
                params["alpha"].zero_()[:, 0] = float(cfg.codes)
            else:
                params["alpha"].fill_(1.0 if self.space == "w" else 1.0 / cfg.codes)

    def loss(self, x: torch.Tensor, y: torch.Tensor, physics: torch.nn.Module,
             y_vgg: torch.Tensor | None) -> torch.Tensor:
        fx = physics.A(x)
        out = self.cfg.pixel_weight * (fx - y).flatten(1).square().mean(1)
        if self.cfg.vgg_weight:
            out = out + self.cfg.vgg_weight * 0.001 * (self.vgg_relu3_3(fx) - y_vgg).abs().flatten(1).mean(1)
        return out

    def run(self, y: torch.Tensor, physics: Physics, gen: torch.Generator, history: History,
            start: Reconstruction | None = None) -> Reconstruction:
        cfg = self.cfg
        seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
        params = self.init_codes(y.shape[0], seed, y.device)
        if cfg.init == "best":
            self.best_start(y, physics, params, seed)
        codes, alpha, w_tail = params.get("z", params.get("w")), params["alpha"], params.get("w_tail")
        leaves = list(params.values())
        opt = torch.optim.SGD(leaves, lr=cfg.lr) if cfg.optimizer == "sgd" else torch.optim.Adam(leaves, lr=cfg.lr)
        with torch.no_grad():
            y_vgg = self.vgg_relu3_3(y) if cfg.vgg_weight else None
        steps = minimise(opt, lambda step: (self.loss(self.compose(codes, alpha, w_tail), y, physics, y_vgg), {}),
                         cfg.steps, history, stage="inversion", progress=self.progress,
                         until=Plateau(cfg.tol, cfg.patience) if cfg.tol > 0 else None)
        with torch.no_grad():
            x = self.compose(codes, alpha, w_tail).clamp(0, 1)
        return Reconstruction(mean=x.cpu(), observation=y.cpu(),
                              tensors={k: v.detach().cpu() for k, v in params.items()},
                              config={"code_space": self.space, "steps_run": steps})


def render_mganprior(G: Generator, rec: Reconstruction) -> torch.Tensor:
    """Re-compose an mGANprior result from its saved codes and importances."""
    cfg = {k: v for k, v in rec.config.items() if k in MGANPriorConfig.__dataclass_fields__}
    inv = MGANPrior(G, **cfg)
    t = {k: v.to(G.device) for k, v in rec.tensors.items()}
    with torch.no_grad():
        return inv.compose(t.get("z", t.get("w")), t["alpha"], t.get("w_tail")).clamp(0, 1).cpu()


register_renderer(MGANPrior.name, render_mganprior)
