"""Super-resolution: downsampling by an integer factor 2..64 with a named kernel.

Kernels (BRGM.md §1.1; record the name with every result):

* ``"box"``: exact average over non-overlapping f x f blocks (BRGM TF). Linear, keeps [0, 1].
* ``"bicubic_noaa"``: BRGM PyTorch parity, ``F.interpolate(x, scale_factor=1/f, mode="bicubic",
  align_corners=False, recompute_scale_factor=True)`` with ``antialias=False``: each low-resolution pixel is a
  4 x 4-tap cubic (a = -0.75) sample at the centre of its block, i.e. aliased point sampling at large f.
  Computed with ``size=(H//f, W//f)``, which gives the same numbers (the kernel then derives the scale from the
  sizes, exactly as with ``recompute_scale_factor=True``) without the float floor of ``H * (1/f)``.
* ``"bicubic_aa"``: the same call with ``antialias=True`` (cubic kernel stretched over the block, as PIL).

Both bicubic kernels have negative lobes, so ``A(x)`` may leave [0, 1] slightly near sharp edges; the operator
is not clamped, so that it stays linear and matches the reference numerically.

``A_dagger``: for ``box``, nearest-neighbour enlargement, which is the exact Moore-Penrose pseudo-inverse of
the block average (``A A^T = I / f^2``, so ``A^+ = f^2 A^T`` = replication), hence ``A(A_dagger(y)) == y``.
For the bicubic kernels, bicubic enlargement (``align_corners=False``) clamped to [0, 1]: an image-sized
estimate (the bicubic baseline), not an exact inverse.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .base import Physics, Shape, check_image, check_shape, register

KERNELS = ("box", "bicubic_aa", "bicubic_noaa")
MIN_FACTOR, MAX_FACTOR = 2, 64


@register
class SuperResolution(Physics):
    """Downsample by ``factor`` with ``kernel``; image sides must be divisible by ``factor``.

    x (N, C, H, W) -> y (N, C, H // factor, W // factor).
    """

    name = "superres"

    def __init__(self, factor: int, kernel: str = "box", *, sigma: float = 0.0) -> None:
        super().__init__(sigma=sigma)
        if isinstance(factor, bool) or not isinstance(factor, int):
            if isinstance(factor, float) and factor.is_integer():
                factor = int(factor)
            else:
                raise ValueError(f"factor must be an integer in {MIN_FACTOR}..{MAX_FACTOR}, got {factor!r}")
        if not MIN_FACTOR <= factor <= MAX_FACTOR:
            raise ValueError(f"factor must be an integer in {MIN_FACTOR}..{MAX_FACTOR}, got {factor}")
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNELS}")
        self.factor = int(factor)
        self.kernel = kernel

    def out_shape(self, in_shape: Sequence[int]) -> Shape:
        n, c, h, w = check_shape(in_shape)
        f = self.factor
        if h % f or w % f:
            raise ValueError(f"image size {h}x{w} is not divisible by the super-resolution factor {f}: "
                             f"expected H and W multiples of {f}, got {h}x{w}")
        return (n, c, h // f, w // f)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        n, c, h, w = self.check_input(x).shape
        f = self.factor
        if self.kernel == "box":
            return F.avg_pool2d(x, kernel_size=f, stride=f)
        return F.interpolate(x, size=(h // f, w // f), mode="bicubic", align_corners=False,
                             antialias=self.kernel == "bicubic_aa")

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        check_image(y, "observation")
        f = self.factor
        size = (y.shape[-2] * f, y.shape[-1] * f)
        if self.kernel == "box":
            return F.interpolate(y, size=size, mode="nearest")
        return F.interpolate(y, size=size, mode="bicubic", align_corners=False).clamp(0.0, 1.0)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "factor": self.factor, "kernel": self.kernel}
