"""From an image file to a restoration: fit the image to the generator, build the forward model, run a method.

The functions here are what ``genprior restore`` calls; a Python user can call them the same way.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .errors import GenpriorError
from .generators import Generator
from .io.images import IMAGE_SUFFIXES, read_image
from .physics import Colorization, Denoising, Inpainting, Physics, SuperResolution, make_mask

TASKS = ("superres", "inpaint", "denoise", "colorize")


def list_images(path: str | Path) -> list[Path]:
    """The image files at ``path`` (a file, or a folder's images in sorted order)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise GenpriorError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return files
    if not path.exists():
        raise GenpriorError(f"{path}: no such file or folder")
    return [path]


def fit_square(x: torch.Tensor, size: int, *, what: str = "image") -> torch.Tensor:
    """Centre-crop (1, C, H, W) to a square and resize to ``size`` (antialiased bicubic), warning when it changes."""
    _, _, h, w = x.shape
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        warnings.warn(f"{what}: {w}x{h} is not square; centre-cropped to {s}x{s}", stacklevel=2)
        x = x[:, :, top : top + s, left : left + s]
    if x.shape[-1] != size:
        warnings.warn(f"{what}: resized from {x.shape[-1]}x{x.shape[-1]} to {size}x{size}", stacklevel=2)
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return x


def make_physics(task: str, G: Generator, *, factor: int = 4, kernel: str = "box", mask: str = "center",
                 sigma: float = 0.0, seed: int = 0) -> Physics:
    """The forward model for ``task`` on the generator's images (R x R, G.channels)."""
    if task == "superres":
        if G.resolution % factor:
            raise GenpriorError(f"the super-resolution factor {factor} does not divide the generator's "
                                f"resolution {G.resolution} (not divisible)")
        return SuperResolution(factor, kernel, sigma=sigma)
    if task == "inpaint":
        return Inpainting(make_mask(mask, G.resolution, seed=seed), sigma=sigma)
    if task == "denoise":
        if sigma <= 0:
            raise GenpriorError("denoising needs the noise level: pass --sigma (std in [0, 1] units)")
        return Denoising(sigma)
    if task == "colorize":
        if G.channels != 3:
            raise GenpriorError("colorization needs a colour generator; this one has 1 channel")
        return Colorization(sigma=sigma)
    raise GenpriorError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")


def load_observation(path: str | Path, G: Generator, physics: Physics, task: str, *,
                     simulate: bool = False, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(y, truth) for one file: y (1, C', H', W') on the forward model's grid.

    With ``simulate`` the file is a clean image: it is fitted to the generator and degraded by the physics
    (seeded noise), and returned as the truth too. Otherwise the file *is* the observation: a low-resolution
    image for super-resolution (fitted to R/factor), a grey or colour image for colorization (converted to
    grey), an image at the generator's size otherwise.
    """
    if simulate:
        x = fit_square(read_image(path, channels=G.channels), G.resolution, what=str(path))
        return physics(x, seed=seed), x
    if task == "colorize":
        x = fit_square(read_image(path, channels=3), G.resolution, what=str(path))
        return physics.A(x), None
    size = G.resolution // physics.factor if task == "superres" else G.resolution
    y = fit_square(read_image(path, channels=G.channels), size, what=str(path))
    return y, None


def with_luma(rgb: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """Replace the ITU-R 601 luma of rgb (N, 3, H, W) by grey (N, 1, H, W), keeping its chroma (YCbCr).

    Cb and Cr depend only on B - Y and R - Y, so swapping Y shifts every channel by the luma difference;
    this is how BIGPrior's colorization builds its GAN estimate from the inversion.
    """
    luma = Colorization().to(rgb.device).A(rgb)
    return (rgb + (grey - luma)).clamp(0, 1)


def run_bigprior(G: Generator, y: torch.Tensor, physics: Physics, task: str, fusion: str | Path, *,
                 steps: int | None = None, layer: int | None = None, seed: int = 0, progress: bool = True):
    """mGANprior inversion for the GAN estimate g, then the fusion net: x = φ·g + (1 - φ)·d(y), with φ.

    The inversion uses `MGANPrior.preset` (for DCGAN at layer 3). A grey generator's in-painting or denoising
    (the shipped StyleGAN2s) goes through the RGB fusion net with y and g repeated to 3 channels; x and φ are
    then averaged back to one channel, which is the fusion with the channel-mean φ.
    """
    from .methods import BIGPrior, MGANPrior
    from .result import Reconstruction

    if task not in ("colorize", "inpaint", "denoise"):
        raise GenpriorError(f"BIGPrior handles colorize, inpaint and denoise, not {task}")
    net = BIGPrior.load(fusion, task=task)
    grey = y.shape[1] == 1 and task != "colorize"
    net.check(task=task, channels=3 if grey else y.shape[1])
    overrides = {"layer": layer} if layer is not None else ({"layer": 3} if G.family == "dcgan" else {})
    if steps:
        overrides["steps"] = steps
    inv = MGANPrior.preset(G, task, progress=progress, **overrides)(y, physics, seed=seed)
    g = inv.mean.to(y.device)
    if task == "colorize":
        g = with_luma(g, y)
    holes = (1 - physics.observed.float()).expand(y.shape[0], 1, -1, -1) if task == "inpaint" else None  # 1 = hole
    if grey:
        x, phi = net(y.expand(-1, 3, -1, -1), g.expand(-1, 3, -1, -1), mask=holes)
        x, phi = x.mean(1, keepdim=True), phi.mean(1, keepdim=True)
    else:
        x, phi = net(y, g, mask=holes)
    return Reconstruction(mean=x.cpu(), phi=phi.cpu(), observation=y.cpu(), seed=seed, tensors=inv.tensors,
                          images={"gan_estimate": g.cpu()},
                          config={"method": "bigprior", "fusion": str(fusion), "fusion_net": net.config(),
                                  "inversion": inv.config},
                          history={"inversion": inv.history})


def run_method(method: str, G: Generator, y: torch.Tensor, physics: Physics, *, steps: int | None = None,
               samples: int = 16, seed: int = 0, progress: bool = True, **options: Any):
    """Run ``map`` or ``vi`` on y; returns a `Reconstruction`."""
    from .methods import BRGM, VariationalBRGM

    space = "w+" if G.w_dim is not None else "z"
    if method == "map":
        kw = {"steps": steps} if steps else {}
        return BRGM(G, space=space, progress=progress, **kw, **options)(y, physics, seed=seed)
    if method == "vi":
        kw = {"steps": steps} if steps else {}
        return VariationalBRGM(G, space=space, num_samples=samples, progress=progress, **kw, **options)(
            y, physics, seed=seed)
    raise GenpriorError(f"unknown method {method!r}; choose map or vi")
