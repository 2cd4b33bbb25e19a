"""Colorization: the observation is the ITU-R BT.601 luma of an RGB image.

``A(x) = 0.299 R + 0.587 G + 0.114 B`` (N, 3, H, W) -> (N, 1, H, W), applied to the values as given (no
gamma handling, as PIL's ``convert("L")`` does). The weights sum to 1, so [0, 1] is kept.

``A_dagger(y)`` repeats the grey channel three times: the minimum-norm pre-image is ``y * w / |w|^2``, which
is tinted; the grey image is the natural estimate, and since the weights sum to 1 it is an exact right inverse
too, ``A(A_dagger(y)) = y``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .base import Physics, Shape, check_image, check_shape, register

LUMA_601 = (0.299, 0.587, 0.114)


@register
class Colorization(Physics):
    """RGB -> ITU-R 601 luma (1 channel), optionally with Gaussian noise of std ``sigma``."""

    name = "colorize"

    def __init__(self, *, sigma: float = 0.0) -> None:
        super().__init__(sigma=sigma)
        self.register_buffer("weights", torch.tensor(LUMA_601, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def out_shape(self, in_shape: Sequence[int]) -> Shape:
        n, c, h, w = check_shape(in_shape)
        if c != 3:
            raise ValueError(f"colorization needs RGB images: expected 3 channels, got {c}")
        return (n, 1, h, w)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        self.check_input(x)
        return (x * self.weights.to(device=x.device, dtype=x.dtype)).sum(dim=1, keepdim=True)

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        check_image(y, "observation")
        if y.shape[1] != 1:
            raise ValueError(f"a colorization observation is grey: expected 1 channel, got {y.shape[1]}")
        return y.expand(-1, 3, -1, -1).contiguous()

    def config(self) -> dict[str, Any]:
        return super().config()


def with_luma(rgb: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """Replace the ITU-R 601 luma of rgb (N, 3, H, W) by grey (N, 1, H, W), keeping its chroma (YCbCr).

    Cb and Cr depend only on B - Y and R - Y, so swapping Y shifts every channel by the luma difference;
    this is how BIGPrior's colorization builds its GAN estimate from the inversion. Clamped to [0, 1].
    """
    luma = (rgb * torch.tensor(LUMA_601, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return (rgb + (grey - luma)).clamp(0, 1)
