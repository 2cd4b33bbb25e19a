"""Super-resolution: downsampling by an integer factor 2..64 with a named kernel.

Kernels (BRGM.md §1.1; record the name with every result):

* ``"box"``: exact average over non-overlapping f x f blocks (BRGM TF). Linear, keeps [0, 1].
* ``"bicubic_noaa"``: BRGM PyTorch parity, ``F.interpolate(x, scale_factor=1/f, mode="bicubic",
  align_corners=False, recompute_scale_factor=True)`` with ``antialias=False``: each low-resolution pixel is a
  4 x 4-tap cubic (a = -0.75) sample at the centre of its block, i.e. aliased point sampling at large f.
  Computed with ``size=(H//f, W//f)``, which gives the same numbers (the kernel then derives the scale from the
  sizes, exactly as with ``recompute_scale_factor=True``) without the float floor of ``H * (1/f)``.
* ``"bicubic_aa"``: the same call with ``antialias=True`` (cubic kernel stretched over the block, as PIL).
* ``"bilinear_aa"``: ``mode="bilinear", antialias=True`` (a triangle over two blocks, as PIL's BILINEAR).
* ``"gaussian"``: a Gaussian blur of std ``factor / 2`` pixels (reflected at the borders), sampled at the block
  centres.
* ``"auto"``: an unknown kernel, estimated: a mixture ``Σ π_j A_j`` of the four standard kernels above whose
  weights π (a softmax of ``logits``) are fitted with the latent (`fit_parameters`); the fitted weights are part
  of the config, so a result records the kernel it found.

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

KERNELS = ("box", "bicubic_aa", "bicubic_noaa", "bilinear_aa", "gaussian", "auto")
STANDARD_KERNELS = ("box", "bicubic_aa", "bilinear_aa", "gaussian")  # the candidates of "auto"
MIN_FACTOR, MAX_FACTOR = 2, 64


@register
class SuperResolution(Physics):
    """Downsample by ``factor`` with ``kernel``; image sides must be divisible by ``factor``.

    x (N, C, H, W) -> y (N, C, H // factor, W // factor).
    """

    name = "superres"

    def __init__(self, factor: int, kernel: str = "box", *, sigma: float = 0.0,
                 weights: dict[str, float] | None = None) -> None:
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
        if kernel == "auto":
            w = torch.tensor([float((weights or {}).get(k, 1.0)) for k in STANDARD_KERNELS])
            if not bool(torch.isfinite(w).all()) or bool((w <= 0).any()):
                raise ValueError(f"kernel weights must be positive, got {weights!r}")
            self.logits = torch.nn.Parameter(torch.log(w / w.sum()), requires_grad=False)
        elif weights is not None:
            raise ValueError("kernel weights are only for kernel='auto'")

    def fit_parameters(self) -> list[torch.Tensor]:
        """The mixture logits of an ``auto`` kernel (fitted with the latent), else nothing."""
        return [self.logits] if self.kernel == "auto" else []

    def kernel_weights(self) -> dict[str, float]:
        """The ``auto`` kernel's mixture weights π per standard kernel (one kernel: {kernel: 1})."""
        if self.kernel != "auto":
            return {self.kernel: 1.0}
        return dict(zip(STANDARD_KERNELS, torch.softmax(self.logits.detach(), 0).tolist()))

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
        if self.kernel == "auto":
            pi = torch.softmax(self.logits, 0).to(x.dtype)
            return sum(p * downsample(x, f, k) for p, k in zip(pi, STANDARD_KERNELS))
        return downsample(x, f, self.kernel)

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        check_image(y, "observation")
        f = self.factor
        size = (y.shape[-2] * f, y.shape[-1] * f)
        if self.kernel == "box":
            return F.interpolate(y, size=size, mode="nearest")
        return F.interpolate(y, size=size, mode="bicubic", align_corners=False).clamp(0.0, 1.0)

    def config(self) -> dict[str, Any]:
        cfg = {**super().config(), "factor": self.factor, "kernel": self.kernel}
        if self.kernel == "auto":
            cfg["weights"] = self.kernel_weights()
        return cfg


def _gaussian_taps(factor: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """1-D Gaussian of std factor / 2 px sampled at offsets from a block centre (even factors: half pixels)."""
    std = factor / 2
    r = int(3 * std + factor / 2)
    t = torch.arange(-r, r + factor, dtype=dtype, device=device) - (factor - 1) / 2
    k = torch.exp(-0.5 * (t / std) ** 2)
    return k / k.sum()


def downsample(x: torch.Tensor, factor: int, kernel: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H / factor, W / factor) with one of the fixed kernels (see the module doc)."""
    n, c, h, w = x.shape
    f = factor
    if kernel == "box":
        return F.avg_pool2d(x, kernel_size=f, stride=f)
    if kernel in ("bicubic_aa", "bicubic_noaa"):
        return F.interpolate(x, size=(h // f, w // f), mode="bicubic", align_corners=False,
                             antialias=kernel == "bicubic_aa")
    if kernel == "bilinear_aa":
        return F.interpolate(x, size=(h // f, w // f), mode="bilinear", align_corners=False, antialias=True)
    if kernel == "gaussian":
        k = _gaussian_taps(f, x.dtype, x.device)
        r = int(3 * (f / 2) + f / 2)
        xp = F.pad(x, (r, r, r, r), mode="reflect")
        x = F.conv2d(xp, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), stride=(1, f), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), stride=(f, 1), groups=c)
    raise ValueError(f"unknown kernel {kernel!r}")
