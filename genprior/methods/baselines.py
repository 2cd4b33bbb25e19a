"""Honest reference points without a generative prior."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bicubic_upsample(y: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, h*factor, w*factor) by bicubic interpolation, clamped to [0, 1]."""
    return F.interpolate(y, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0, 1)


def pseudo_inverse(y: torch.Tensor, physics: torch.nn.Module) -> torch.Tensor:
    """The forward model's own pseudo-inverse ``A_dagger(y)``, clamped to [0, 1]."""
    return physics.A_dagger(y).clamp(0, 1)
