"""Denoising: ``A`` is the identity, the observation is ``x + N(0, sigma^2)``.

``sigma`` is the known noise std in [0, 1] image units (e.g. 0.05 is about 13/255). ``A_dagger`` is the
identity too (the observation itself, unclamped). `estimate_sigma` estimates an unknown sigma from the image
(Donoho's wavelet MAD estimator on the finest diagonal Haar coefficients, as scikit-image's ``estimate_sigma``).
`classical_denoise` is the strongest simple estimate from the observation alone (scikit-image's non-local means
at the known σ): the data term d(y) that restorations blend with the generator's image.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .base import Physics, Shape, check_image, check_shape, register


MAD_TO_STD = 0.6745  # median absolute deviation of N(0, 1)
NL_MEANS_H = 0.6  # filter strength h / σ: the best of scikit-image's denoisers (and of h in 0.6-1.0) on real
# held-out faces and brains at σ 0.1 (benchmarks/results/brgm.md)


def estimate_sigma(y: torch.Tensor) -> torch.Tensor:
    """Gaussian noise std per image (N,) of y (N, C, H, W), from the finest diagonal Haar detail band.

    σ = median(|HH|) / 0.6745 per channel, averaged over channels (HH = (a - b - c + d) / 2 over 2x2 blocks:
    an orthonormal Haar coefficient, so white noise of std σ gives HH of std σ). Image structure inflates the
    estimate slightly; a flat image gives 0.
    """
    check_image(y, "observation")
    if min(y.shape[-2:]) < 2:
        raise ValueError(f"an image of size {tuple(y.shape[-2:])} is too small to estimate its noise level")
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    x = y[..., :h, :w]
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return (hh.abs().flatten(2).median(dim=2).values / MAD_TO_STD).mean(1)


def classical_denoise(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Non-local means (scikit-image, fast mode, 5x5 patches, 13x13 search, h = 0.6σ) of y (N, C, H, W) at the
    noise std σ, in [0, 1] on y's device and dtype; y clamped to [0, 1] when σ is 0.

    >>> y = Denoising(0.1)(torch.full((1, 3, 16, 16), 0.5), seed=0)
    >>> bool((classical_denoise(y, 0.1) - 0.5).abs().mean() < (y - 0.5).abs().mean() / 3)
    True
    """
    check_image(y, "observation")
    if sigma <= 0:
        return y.clamp(0, 1)
    from skimage.restoration import denoise_nl_means

    arr = y.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().double().numpy()
    grey = y.shape[1] == 1
    out = [denoise_nl_means(a[..., 0] if grey else a, h=NL_MEANS_H * sigma, sigma=sigma, patch_size=5,
                            patch_distance=6, fast_mode=True, channel_axis=None if grey else -1) for a in arr]
    x = torch.stack([torch.from_numpy(o.copy()) for o in out]).to(y.device, y.dtype)
    return (x[:, None] if grey else x.permute(0, 3, 1, 2)).clamp(0, 1)


@register
class Denoising(Physics):
    """Identity operator with Gaussian noise of std ``sigma``. x (N, C, H, W) -> y of the same shape."""

    name = "denoise"

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
