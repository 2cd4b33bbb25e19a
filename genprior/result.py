"""`Reconstruction`: what a restoration returns, and its files.

``save(dir)`` writes PNGs (restoration, observation, samples, std map), ``state.safetensors`` (every tensor;
no pickles) and ``config.json``; ``Reconstruction.load(dir)`` reads them back, and
``render(G)`` re-renders the restoration from the stored latent and noise exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from . import __version__
from .io.atomic import atomic_dir, atomic_path
from .io.images import image_grid, save_image

_TENSORS = ("mean", "std", "samples", "phi", "latent", "latent_std", "observation")


@dataclass
class Reconstruction:
    """Tensors on the CPU; images (N, C, H, W) in [0, 1].

    mean: the restoration (MAP image, or posterior mean); std: per-pixel posterior std (N, C, H, W);
    samples: (N, S, C, H, W) posterior samples; phi: per-pixel prior weight (BIGPrior); latent: the
    generator latent of ``mean`` (the posterior mean μ for VI, whose std is latent_std); noise: StyleGAN2
    noise maps used (name -> tensor).
    """

    mean: torch.Tensor
    latent: torch.Tensor | None = None
    latent_std: torch.Tensor | None = None
    observation: torch.Tensor | None = None
    std: torch.Tensor | None = None
    samples: torch.Tensor | None = None
    phi: torch.Tensor | None = None
    noise: dict[str, torch.Tensor] = field(default_factory=dict)
    images: dict[str, torch.Tensor] = field(default_factory=dict)  # extra pictures (N, C, H, W): truth, merged...
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # method-specific state (e.g. mGANprior codes)
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def render(self, G: Any) -> torch.Tensor:
        """Re-render ``mean`` exactly from the saved state with generator G -> (N, C, H, W) in [0, 1].

        Each method registers how its results render (latent, noise maps, range extension, consistency, ...);
        a result of another origin renders from its latent and noise maps.
        """
        from .methods.base import has_renderer, renderer_for

        method = self.config.get("method", "")
        if has_renderer(method):
            return renderer_for(method)(G, self)
        if self.latent is None:
            raise ValueError("this reconstruction stores no latent")
        with torch.no_grad():
            noise = {k: v.to(G.device) for k, v in self.noise.items()}
            return G.render(self.latent.to(G.device), noise=noise or None).cpu()

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False, report: bool = True) -> Path:
        """Write the result into ``directory`` (created; all-or-nothing: written to a temp dir, then renamed),
        with its report (``report.png``, ``index.html``; `genprior.report`) unless ``report=False``."""

        def write(tmp: Path) -> None:
            self._write(tmp)
            if report:
                from .report import write_report

                write_report(tmp, self)

        return atomic_dir(directory, write, overwrite=overwrite)

    def _write(self, d: Path) -> None:
        own = lambda t: t.detach().cpu().clone().contiguous()  # noqa: E731  (safetensors refuses shared memory)
        tensors = {k: own(getattr(self, k)) for k in _TENSORS if getattr(self, k) is not None}
        tensors.update({f"noise.{k}": own(v) for k, v in self.noise.items()})
        tensors.update({f"image.{k}": own(v) for k, v in self.images.items()})
        tensors.update({f"tensor.{k}": own(v) for k, v in self.tensors.items()})
        with atomic_path(d / "state.safetensors") as tmp:
            save_file(tensors, str(tmp), metadata={"genprior_version": self.version})
        meta = {"seed": self.seed, "version": self.version, "config": self.config, "history": self.history}
        (d / "config.json").write_text(json.dumps(meta, indent=2, default=str))
        n = self.mean.shape[0]
        for i in range(n):
            tag = "" if n == 1 else f"_{i}"
            save_image(self.mean[i], d / f"restored{tag}.png")
            if self.observation is not None:
                save_image(self.observation[i], d / f"observation{tag}.png")
            if self.samples is not None:
                save_image(image_grid(self.samples[i]), d / f"samples{tag}.png")
            if self.std is not None:
                save_image(colormap(self.std[i]), d / f"std{tag}.png")
            if self.phi is not None:
                save_image(colormap(self.phi[i], vmax=1.0), d / f"phi{tag}.png")
            for name, img in self.images.items():
                save_image(img[i], d / f"{name}{tag}.png")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Reconstruction":
        d = Path(directory)
        from .io.weights import read_safetensors

        tensors = read_safetensors(d / "state.safetensors").tensors
        meta = json.loads((d / "config.json").read_text())
        noise = {k[6:]: v for k, v in tensors.items() if k.startswith("noise.")}
        images = {k[6:]: v for k, v in tensors.items() if k.startswith("image.")}
        extra = {k[7:]: v for k, v in tensors.items() if k.startswith("tensor.")}
        return cls(**{k: tensors.get(k) for k in _TENSORS}, noise=noise, images=images, tensors=extra,
                   seed=meta.get("seed"),
                   config=meta.get("config", {}), history=meta.get("history", {}),
                   version=meta.get("version", __version__))


def colormap(x: torch.Tensor, vmax: float | None = None) -> torch.Tensor:
    """(C, H, W) -> (3, H, W) in [0, 1]: channel mean mapped through a perceptual dark-to-bright scale.

    ``vmax`` fixes the top of the scale (default: the map's maximum, so the picture shows relative values).
    """
    m = x.float().mean(0)
    top = vmax if vmax is not None else float(m.max())
    t = (m / top).clamp(0, 1) if top > 0 else torch.zeros_like(m)
    # A compact inferno-like ramp: black -> purple -> orange -> yellow.
    r = (1.6 * t).clamp(0, 1)
    g = (1.6 * t - 0.6).clamp(0, 1)
    b = torch.where(t < 0.4, 1.5 * t, (1 - t) * 1.0).clamp(0, 1)
    return torch.stack([r, g, b])
