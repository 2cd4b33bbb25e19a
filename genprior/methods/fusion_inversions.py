"""Training triples for BIGPrior fusion nets: degrade clean images, invert each one, write the folders.

`make_triples(G, files, task, out)` writes, per image (by file stem), the folders `FusionTriples` reads:

* ``obs/<stem>.npy``: the observation y as float32 (H, W, C) in [0, 1] scale, not clipped (denoising noise
  may leave [0, 1]); grey (H, W) for colorization;
* ``gan/<stem>.npy``: the GAN estimate g (H, W, 3) float32 in [0, 1] (colorization: with the observation's luma,
  as `BIGPrior` fuses it);
* ``gt/<stem>.npy``: the truth (H, W, 3); ``mask/<stem>.png`` for in-painting (white = observed).

A grey generator's images are repeated to 3 channels, as `BIGPrior` sends them through an RGB fusion net.
``degrade`` draws each image's degradation from its own seed: denoising σ uniform in ``sigma_range``
(BIGPrior's blind protocol; a fixed σ with ``sigma_range=(s, s)``); in-painting a centred hole whose side is a
fraction uniform in ``hole_range``. The gan file is written last (atomically), so a folder can be resumed: images
whose gan file exists are skipped. `denoised_observations` adds ``obs_nlm/``: each denoising observation's
non-local means at the σ it drew (the data term of genprior's denoising fusion nets).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..generators import Generator
from ..io.atomic import atomic_path
from ..io.images import read_image, save_image
from ..physics import Colorization, Denoising, Inpainting, Physics, center_mask
from ..physics.denoising import classical_denoise
from ..progress import progress as progress_bar
from .base import Method
from .bigprior import fuse_ready_estimate
from .fusion import check_task_name

__all__ = ["degrade", "make_triples", "denoised_observations", "SIGMA_RANGE", "HOLE_RANGE"]

SIGMA_RANGE = (0.02, 0.2)  # BIGPrior's blind AWGN: σ ~ U{5..50}/255, here continuous in [0, 1] units
HOLE_RANGE = (0.25, 0.5)  # side fraction of the centred hole (`genprior restore`'s default is 0.25)


def degrade(task: str, size: int, seed: int, *, sigma_range: Sequence[float] = SIGMA_RANGE,
            hole_range: Sequence[float] = HOLE_RANGE) -> tuple[Physics, dict]:
    """The forward model of one training image and what was drawn: ``{"sigma": ...}`` or ``{"hole": ...}``."""
    task = check_task_name(task)
    gen = torch.Generator().manual_seed(int(seed))
    u = float(torch.rand((), generator=gen))
    if task == "denoise":
        sigma = sigma_range[0] + u * (sigma_range[1] - sigma_range[0])
        return Denoising(sigma), {"sigma": sigma}
    if task == "inpaint":
        frac = hole_range[0] + u * (hole_range[1] - hole_range[0])
        return Inpainting(center_mask(size, frac)), {"hole": frac}
    return Colorization(), {}


def _save_npy(path: Path, t: torch.Tensor) -> None:
    """(C, H, W) -> (H, W, C) float32 (grey: (H, W)), written atomically."""
    arr = t.detach().float().cpu().numpy()
    arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    with atomic_path(path, overwrite=True) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(arr), allow_pickle=False)


def make_triples(G: Generator, files: Sequence[str | os.PathLike], task: str, out: str | os.PathLike, *,
                 inversion: Method, seed: int = 0, sigma_range: Sequence[float] = SIGMA_RANGE,
                 hole_range: Sequence[float] = HOLE_RANGE, progress: bool = True) -> Path:
    """Degrade and invert each clean image file; write obs/gan/gt[/mask] folders under ``out``; returns ``out``.

    Image ``i`` uses degradation seed ``seed + i`` (noise, hole) and inversion seed ``seed + i``. ``inversion``
    is the method giving g (the same settings as at test time, e.g. ``MGANPrior.preset(G, task)``).
    ``out/degradations.json`` records what each image drew.
    """
    task = check_task_name(task)
    out = Path(out)
    log_path = out / "degradations.json"
    drawn = json.loads(log_path.read_text()) if log_path.is_file() else {}
    for i, f in enumerate(progress_bar(list(files), desc=f"{task} triples", enabled=progress, unit="images")):
        stem = Path(f).stem
        if (out / "gan" / f"{stem}.npy").is_file():
            continue
        x = read_image(f, channels=G.channels).to(G.device)
        physics, info = degrade(task, G.resolution, seed + i, sigma_range=sigma_range, hole_range=hole_range)
        physics = physics.to(G.device)
        y = physics(x, seed=seed + i)
        g = inversion(y, physics, seed=seed + i).mean.to(G.device)
        g = fuse_ready_estimate(g, y, task)
        rgb = (lambda t: t.expand(-1, 3, -1, -1)) if G.channels == 1 else (lambda t: t)  # noqa: E731
        _save_npy(out / "gt" / f"{stem}.npy", rgb(x)[0])
        _save_npy(out / "obs" / f"{stem}.npy", (y if task == "colorize" else rgb(y))[0])
        if task == "inpaint":
            save_image(physics.observed.float()[0], out / "mask" / f"{stem}.png", overwrite=True)
        _save_npy(out / "gan" / f"{stem}.npy", rgb(g)[0])
        drawn[stem] = {"file": str(f), "seed": seed + i, **info}
        with atomic_path(log_path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(drawn, indent=1))
    return out


def denoised_observations(out: str | os.PathLike) -> Path:
    """Write ``out/obs_nlm/<stem>.npy``: the non-local means (`classical_denoise`) of each ``obs/<stem>.npy`` of a
    denoising triples folder at the σ recorded in ``degradations.json``; existing files are kept; returns the
    folder."""
    out = Path(out)
    drawn = json.loads((out / "degradations.json").read_text())
    target = out / "obs_nlm"
    for stem, info in drawn.items():
        if (target / f"{stem}.npy").is_file():
            continue
        y = torch.from_numpy(np.load(out / "obs" / f"{stem}.npy", allow_pickle=False))
        y = (y[None] if y.ndim == 2 else y.permute(2, 0, 1))[None]
        _save_npy(target / f"{stem}.npy", classical_denoise(y, float(info["sigma"]))[0])
    return target
