"""Colour metrics: CIE L*a*b* and BIGPrior's colorization AuC, on (N, 3, H, W) sRGB images in [0, 1]."""

from __future__ import annotations

import torch

from .image import prepare_pair

__all__ = ["rgb_to_lab", "colorization_auc"]

# sRGB (D65) -> CIE XYZ, and the D65 2° white point: the constants of skimage.color.rgb2lab.
_XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423),
                 (0.212671, 0.715160, 0.072169),
                 (0.019334, 0.119193, 0.950227))
_D65 = (0.95047, 1.0, 1.08883)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* of sRGB images (N, 3, H, W) in [0, 1], D65 2° white; float64 (float32 on MPS).

    The same formulas as ``skimage.color.rgb2lab`` (values outside [0, 1] are not clipped: the linear
    segment of the sRGB curve extends below 0.04045).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"rgb_to_lab expects (N, 3, H, W) RGB, got {getattr(x, 'shape', type(x))}")
    dtype = torch.float32 if x.device.type == "mps" else torch.float64
    x = x.detach().to(dtype)
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055).clamp(min=0).pow(2.4), x / 12.92)
    m = torch.tensor(_XYZ_FROM_RGB, dtype=dtype, device=x.device)
    xyz = torch.einsum("ij,njhw->nihw", m, lin)
    xyz = xyz / torch.tensor(_D65, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=0).pow(1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f.unbind(dim=1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def colorization_auc(x: torch.Tensor, gt: torch.Tensor, thresholds: int = 150) -> torch.Tensor:
    """BIGPrior's colorization AuC in %: (N,) for RGB x, gt (N, 3, H, W) in [0, 1].

    Both images go to CIE Lab with L set to 0; per pixel the CIE76 ΔE (the distance in the ab plane);
    for each threshold t = 0, 1, …, ``thresholds``−1 the fraction of pixels with ΔE ≤ t; the mean over the
    thresholds, ×100. 100 means every pixel's chroma is exact.
    """
    x, gt = prepare_pair(x, gt, 1.0)
    if x.shape[1] != 3:
        raise ValueError(f"colorization_auc needs RGB images (N, 3, H, W), got {tuple(x.shape)}")
    if isinstance(thresholds, bool) or not isinstance(thresholds, int) or thresholds < 1:
        raise ValueError(f"thresholds must be a positive integer, got {thresholds!r}")
    lx, lg = rgb_to_lab(x), rgb_to_lab(gt)
    de = (lx[:, 1:] - lg[:, 1:]).pow(2).sum(dim=1).sqrt().flatten(1)  # (N, P)
    # ΔE ≤ t  <=>  ceil(ΔE) ≤ t for integer t: histogram the ceilings once instead of 150 comparisons.
    bins = de.ceil().clamp(max=thresholds).long()
    counts = torch.zeros(de.shape[0], thresholds + 1, dtype=de.dtype, device=de.device)
    counts.scatter_add_(1, bins, torch.ones_like(de))
    frac = counts[:, :thresholds].cumsum(dim=1) / de.shape[1]
    return frac.mean(dim=1) * 100


