"""BIGPrior (Helou & Süsstrunk 2022): a GAN inversion fused per pixel with the data, ``x = φ·g + (1 - φ)·d(y)``.

``BIGPrior(inversion, fusion)(y, physics, seed=0)`` -> `Reconstruction` with ``phi``:

1. ``inversion`` (a method, by default `MGANPrior` with the task's preset) gives the GAN estimate g;
   for colorization g keeps the observation's luma (only its chroma comes from the prior);
2. ``fusion`` (a `FusionNet`: the official DnCNN φ-net or genprior's bounded one) gives φ (how much of each
   pixel comes from the prior; 1 in an in-painting hole, where there are no data) and the fused image.

The task follows from the physics: `Colorization`, `Inpainting` or `Denoising`. A grey generator's in-painting
or denoising goes through an RGB fusion net with y and g repeated to 3 channels; x and φ are averaged back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import GenpriorError
from ..generators import Generator
from ..physics import Colorization, Denoising, Inpainting, Physics
from ..physics.colorization import with_luma
from ..physics.denoising import classical_denoise
from ..result import Reconstruction
from .base import History, Method, register_renderer, renderer_for
from .fusion import FusionNet
from .mganprior import MGANPrior


def task_of(physics: Physics) -> str:
    """The BIGPrior task of a forward model, or a GenpriorError."""
    if isinstance(physics, (Colorization, Inpainting, Denoising)):
        return physics.name  # "colorize", "inpaint", "denoise": the fusion nets' task names too
    raise GenpriorError(f"BIGPrior handles colorization, in-painting and denoising, not {physics.name}")


class BIGPrior(Method):
    """Inversion + learned fusion; see the module docstring. ``fusion``: a `FusionNet` or a path / run folder."""

    name = "bigprior"

    def __init__(self, inversion: Method, fusion: FusionNet | str | Path, *, progress: bool = False) -> None:
        super().__init__(inversion.G, progress=progress)
        self.inversion = inversion
        self.fusion = fusion if isinstance(fusion, FusionNet) else FusionNet.load(fusion)
        if not self.fusion.source:
            raise GenpriorError("the fusion net has no file (results name it, to be re-rendered): save it first "
                                "with FusionNet.save(path)")
        self.fusion.to(inversion.G.device)
        self.cfg: dict[str, Any] = {"inversion": {"method": inversion.name, **inversion.settings()},
                                    "fusion": self.fusion.config(), "fusion_source": self.fusion.source}

    @classmethod
    def preset(cls, G: Generator, task: str, fusion: FusionNet | str | Path, *, progress: bool = False,
               **inversion: Any) -> "BIGPrior":
        """mGANprior with the task's preset (DCGAN composes at layer 3) and the given fusion net."""
        overrides = {"layer": 3, **inversion} if G.family == "dcgan" and "layer" not in inversion else inversion
        return cls(MGANPrior.preset(G, task, progress=progress, **overrides), fusion, progress=progress)

    def settings(self) -> dict[str, Any]:
        return dict(self.cfg)

    def total_steps(self) -> int:
        return self.inversion.total_steps()

    def run(self, y: torch.Tensor, physics: Physics, gen: torch.Generator, history: History,
            start: Reconstruction | None = None) -> Reconstruction:
        task = task_of(physics)
        grey = y.shape[1] == 1 and task != "colorize"
        self.fusion.check(task=task, channels=3 if grey else y.shape[1])
        inv = self.inversion.run(y, physics, gen, history)
        g = inv.mean.to(y.device)
        x, phi, g = fuse_estimate(self.fusion, y, g, physics, task)
        return Reconstruction(mean=x.cpu(), phi=phi.cpu(), observation=y.cpu(), latent=inv.latent,
                              noise=inv.noise, tensors=inv.tensors, images={"gan_estimate": g.cpu()},
                              config={"task": task, "inversion_result": inv.config})


def fuse_ready_estimate(g: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """The GAN estimate as the fusion sees it: for colorization with the observation's luma (only its chroma
    comes from the prior), otherwise g itself."""
    return with_luma(g, y) if task == "colorize" else g


def fusion_input(fusion: FusionNet, y: torch.Tensor, physics: Physics) -> torch.Tensor:
    """The data term d(y) the fusion net was trained on, (N, C, H, W): y itself, or for a ``"nl_means"`` net
    the observation's non-local means at the physics' σ."""
    if fusion.data_term == "nl_means" and isinstance(physics, Denoising):
        return classical_denoise(y, float(physics.sigma))
    return y


def fuse_estimate(fusion: FusionNet, y: torch.Tensor, g: torch.Tensor, physics: Physics, task: str
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, φ, g as fused) for an observation and a GAN estimate g (N, C, H, W) in [0, 1]."""
    g = fuse_ready_estimate(g, y, task)
    y = fusion_input(fusion, y, physics)
    holes = (1 - physics.observed.float()).expand(y.shape[0], 1, -1, -1) if task == "inpaint" else None
    if y.shape[1] == 1 and task != "colorize":
        x, phi = fusion(y.expand(-1, 3, -1, -1), g.expand(-1, 3, -1, -1), mask=holes)
        return x.mean(1, keepdim=True), phi.mean(1, keepdim=True), g
    x, phi = fusion(y, g, mask=holes)
    return x, phi, g


def render_bigprior(G: Generator, rec: Reconstruction) -> torch.Tensor:
    """Re-render: the inversion from its saved codes, then the fusion net named in the config."""
    from ..physics import physics_from_config

    cfg = rec.config
    inv_cfg = {**cfg["inversion"], **cfg.get("inversion_result", {}), "physics": cfg["physics"]}
    inv = Reconstruction(mean=rec.mean, tensors=rec.tensors, latent=rec.latent, noise=rec.noise,
                         observation=rec.observation, config=inv_cfg)
    g = renderer_for(inv_cfg["method"])(G, inv).to(G.device)
    fusion = FusionNet.load(cfg["fusion_source"]).to(G.device)
    physics = physics_from_config(cfg["physics"]).to(G.device)
    x, _, _ = fuse_estimate(fusion, rec.observation.to(G.device), g, physics, cfg["task"])
    return x.cpu()


register_renderer(BIGPrior.name, render_bigprior)
