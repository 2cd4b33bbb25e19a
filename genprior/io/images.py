"""Image files <-> tensors. Tensors are float32 (N, C, H, W) in [0, 1]; C is 1 (grey) or 3 (RGB)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import GenpriorError
from .atomic import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def read_image(path: str | os.PathLike, channels: int | None = None) -> torch.Tensor:
    """(1, C, H, W) in [0, 1]; ``channels`` 1 or 3 converts (ITU-R 601 luma for grey), None keeps the file's."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = {1: "L", 3: "RGB"}.get(channels or (1 if im.mode in ("L", "I;16", "I", "1") else 3))
            if mode is None:
                raise GenpriorError(f"{path}: channels must be 1 or 3, not {channels}")
            arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise GenpriorError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise GenpriorError(f"{path}: not a readable image ({exc})") from None
    x = torch.from_numpy(arr.copy())
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    return x[None]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8, rounding to nearest."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected (C, H, W) with C in (1, 3), got {tuple(x.shape)}")
    arr = (x.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def save_image(x: torch.Tensor, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write (C, H, W) or (1, C, H, W) in [0, 1] to ``path`` atomically; refuses to overwrite by default."""
    path = Path(path)
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError("save_image writes one image; use image_grid for a batch")
        x = x[0]
    with atomic_path(path, overwrite=overwrite) as tmp:
        Image.fromarray(to_uint8(x)).save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    return path


def image_grid(x: torch.Tensor, cols: int | None = None, pad: int = 2) -> torch.Tensor:
    """(N, C, H, W) -> one (C, H', W') picture, ``cols`` images per row, white padding between."""
    n, c, h, w = x.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad, dtype=x.dtype, device=x.device)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    return grid
