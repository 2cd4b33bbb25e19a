"""What a training snapshot writes besides the checkpoint: the exported generator and a grid of its samples."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..generators.stylegan2 import StyleGAN2Generator
from ..io.checkpoints import save_native
from ..io.images import image_grid, save_image

__all__ = ["to_uint8", "save_image_grid", "model_size_bytes", "export_network", "sample_grid"]


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C)."""
    x = ((img.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def save_image_grid(images: np.ndarray, path: str | os.PathLike, cols: int | None = None) -> Path:
    """Tile uint8 images (N, H, W, C) into one PNG (written atomically, replacing an older grid)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    return save_image(image_grid(x, cols, pad=0), path, overwrite=True)


def model_size_bytes(module: torch.nn.Module) -> int:
    """Bytes of the module's float32 state dict (what the native safetensors file holds, plus a small header)."""
    return sum(v.numel() * 4 for v in module.state_dict().values())


def export_network(G_ema: StyleGAN2Generator, out_dir: Path, step: int, info: dict[str, Any]) -> Path:
    """``network-<step>.safetensors`` and ``network-latest.safetensors`` (genprior's native format, loadable by
    `genprior.load_generator`) with ``info`` under the metadata key ``training``."""
    extra = {"training": info}
    path = save_native(G_ema, out_dir / f"network-{step:08d}.safetensors", overwrite=True, extra=extra)
    save_native(G_ema, out_dir / "network-latest.safetensors", overwrite=True, extra=extra)
    return path


@torch.no_grad()
def sample_grid(G_ema: StyleGAN2Generator, z: torch.Tensor, path: Path) -> Path:
    """A PNG grid of G_ema's samples (constant noise) from latents z (N, z_dim)."""
    samples = torch.cat([G_ema.synthesis(G_ema.mapping(chunk), noise_mode="const") for chunk in z.split(16)])
    return save_image_grid(to_uint8(samples), path)
