"""Image quality metrics on N,C,H,W tensors, one value per image, in batches.

* `psnr`: ``10 log10(data_range^2 / MSE)``, the MSE over C, H, W of each image (``inf`` for identical images),
  as ``skimage.metrics.peak_signal_noise_ratio``.
* `ssim`: mean SSIM over channels and valid pixels, as ``skimage.metrics.structural_similarity(x, y,
  channel_axis=0, data_range=data_range, win_size=7)`` with its defaults: uniform ``win_size`` x ``win_size``
  window, sample covariance (``N / (N - 1)``), K1 = 0.01, K2 = 0.03, the mean taken after cropping
  ``(win_size - 1) // 2`` pixels from each border (so only windows inside the image count and the padding mode
  does not matter).

Both compute in float64 (float32 on MPS, which has no float64) and return an (N,) tensor of that dtype on the
inputs' device. Compute metrics on float tensors, never on re-encoded JPEGs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim"]


def _prepare(x: torch.Tensor, y: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise ValueError(f"images must be N,C,H,W (or C,H,W), got shape {tuple(x.shape)}")
    if not (data_range > 0):
        raise ValueError(f"data_range must be > 0, got {data_range!r}")
    dtype = torch.float32 if x.device.type == "mps" else torch.float64
    x, y = x.detach().to(dtype), y.detach().to(dtype)
    for name, t in (("x", x), ("y", y)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf values")
    return x, y


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: (N,) for x, y of shape (N, C, H, W)."""
    x, y = _prepare(x, y, data_range)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range ** 2 / mse)  # mse == 0 -> inf


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 7) -> torch.Tensor:
    """Structural similarity per image: (N,) for x, y of shape (N, C, H, W); scikit-image's defaults."""
    x, y = _prepare(x, y, data_range)
    if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd integer >= 3, got {win_size!r}")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"images of size {tuple(x.shape[-2:])} are smaller than the window ({win_size}); "
                         "pass a smaller odd win_size")
    n, c, h, w = x.shape
    k1, k2 = 0.01, 0.03
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    cov_norm = win_size ** 2 / (win_size ** 2 - 1)  # sample covariance

    # Local means of x, y, x^2, y^2, xy over the valid windows, in one pooled pass.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1).reshape(n * 5 * c, 1, h, w)
    mu = F.avg_pool2d(stack, win_size, stride=1).reshape(n, 5, c, h - win_size + 1, w - win_size + 1)
    ux, uy, uxx, uyy, uxy = mu.unbind(dim=1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return (num / den).flatten(1).mean(dim=1)


def interval_coverage(samples: torch.Tensor, truth: torch.Tensor, level: float = 0.9) -> torch.Tensor:
    """Share of pixels whose true value lies in the central ``level`` interval of the samples, per image.

    samples (N, S, C, H, W), truth (N, C, H, W) -> (N,). A calibrated posterior gives about ``level``.
    """
    lo = torch.quantile(samples, (1 - level) / 2, dim=1)
    hi = torch.quantile(samples, (1 + level) / 2, dim=1)
    inside = (truth >= lo) & (truth <= hi)
    return inside.flatten(1).float().mean(1)


# --------------------------------------------------------------------------- colour (BIGPrior's colorization AuC)

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
    x, gt = _prepare(x, gt, 1.0)
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


__all__ += ["rgb_to_lab", "colorization_auc"]
