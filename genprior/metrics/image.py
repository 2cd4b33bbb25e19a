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

__all__ = ["psnr", "ssim", "interval_coverage", "prepare_pair"]


def prepare_pair(x: torch.Tensor, y: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
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
    x, y = prepare_pair(x, y, data_range)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range ** 2 / mse)  # mse == 0 -> inf


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 7) -> torch.Tensor:
    """Structural similarity per image: (N,) for x, y of shape (N, C, H, W); scikit-image's defaults."""
    x, y = prepare_pair(x, y, data_range)
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
