"""Denoising: ``A`` is the identity, the observation is ``x + N(0, sigma^2)``.

``sigma`` is the known noise std in [0, 1] image units (e.g. 0.05 is about 13/255). ``A_dagger`` is the
identity too (the observation itself, unclamped).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .base import Physics, Shape, check_image, check_shape, register


@register
class Denoising(Physics):
    """Identity operator with Gaussian noise of std ``sigma``. x (N, C, H, W) -> y of the same shape."""

    name = "denoising"

    def __init__(self, sigma: float = 0.0) -> None:
        super().__init__(sigma=sigma)

    def out_shape(self, in_shape: Sequence[int]) -> Shape:
        return check_shape(in_shape)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self.check_input(x)

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return check_image(y, "observation")

    def config(self) -> dict[str, Any]:
        return super().config()
