"""PSNR and SSIM: batched torch versions cross-checked against scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from genprior.metrics import psnr, ssim
from genprior.physics import Inpainting, SuperResolution, center_mask

skmetrics = pytest.importorskip("skimage.metrics")


def _sk_psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> np.ndarray:
    return np.array([skmetrics.peak_signal_noise_ratio(a.double().numpy(), b.double().numpy(), data_range=data_range)
                     for a, b in zip(x, y)])


def _sk_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 7) -> np.ndarray:
    return np.array([skmetrics.structural_similarity(a.double().numpy(), b.double().numpy(), channel_axis=0,
                                                     data_range=data_range, win_size=win_size)
                     for a, b in zip(x, y)])


def _pair(shape, noise, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    y = (x + noise * torch.randn(shape, generator=g)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("shape", [(3, 3, 32, 32), (2, 1, 40, 23), (1, 4, 7, 9)])
@pytest.mark.parametrize("noise", [0.02, 0.3])
def test_random_images_match_skimage(shape, noise):
    x, y = _pair(shape, noise)
    p, s = psnr(x, y), ssim(x, y)
    assert p.shape == s.shape == (shape[0],)
    np.testing.assert_allclose(p.numpy(), _sk_psnr(x, y), atol=1e-4, rtol=0)
    np.testing.assert_allclose(s.numpy(), _sk_ssim(x, y), atol=1e-4, rtol=0)


@pytest.mark.parametrize("win_size", [3, 5, 11])
def test_other_windows_and_ranges_match_skimage(win_size):
    x, y = _pair((2, 3, 24, 24), 0.1, seed=1)
    np.testing.assert_allclose(ssim(x, y, win_size=win_size).numpy(), _sk_ssim(x, y, win_size=win_size),
                               atol=1e-4, rtol=0)
    x255, y255 = x * 255, y * 255
    np.testing.assert_allclose(ssim(x255, y255, 255.0).numpy(), _sk_ssim(x255, y255, 255.0), atol=1e-4, rtol=0)
    np.testing.assert_allclose(psnr(x255, y255, 255.0).numpy(), psnr(x, y).numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(ssim(x, y, 2.0).numpy(), _sk_ssim(x, y, 2.0), atol=1e-4, rtol=0)


def _faces(shared, n=4) -> torch.Tensor:
    files = sorted((shared / "data" / "faces-utk64").glob("*.jpg"))[:n]
    assert len(files) == n, "faces-utk64 is missing from the shared folder"
    arrs = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255 for f in files]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def test_real_faces_match_skimage(shared):
    x = _faces(shared)
    degraded = {
        "noise": (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1),
        "sr4-bicubic": SuperResolution(4, "bicubic_aa").A_dagger(SuperResolution(4, "bicubic_aa").A(x)),
        "sr2-box": SuperResolution(2).A_dagger(SuperResolution(2).A(x)),
        "inpaint": Inpainting(center_mask(64)).A_dagger(Inpainting(center_mask(64)).A(x)),
        "shifted": torch.roll(x, 1, dims=-1),
    }
    for name, y in degraded.items():
        np.testing.assert_allclose(psnr(x, y).numpy(), _sk_psnr(x, y), atol=1e-4, rtol=0, err_msg=name)
        np.testing.assert_allclose(ssim(x, y).numpy(), _sk_ssim(x, y), atol=1e-4, rtol=0, err_msg=name)
    # a milder degradation scores better on both metrics
    mild, harsh = degraded["sr2-box"], SuperResolution(8).A_dagger(SuperResolution(8).A(x))
    assert (psnr(x, mild) > psnr(x, harsh)).all() and (ssim(x, mild) > ssim(x, harsh)).all()


def test_identical_and_input_forms():
    x, y = _pair((2, 3, 16, 16), 0.1)
    assert torch.isinf(psnr(x, x)).all()
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(psnr(x[0], y[0]), psnr(x, y)[:1])  # C,H,W is one image
    torch.testing.assert_close(ssim(x[0], y[0]), ssim(x, y)[:1])
    torch.testing.assert_close(ssim(x, y), ssim(y, x))  # symmetric
    torch.testing.assert_close(ssim(x.double(), y.double()), ssim(x, y))


def test_bad_input():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="shape"):
        psnr(x, torch.rand(1, 3, 16, 8))
    with pytest.raises(ValueError, match="smaller than the window"):
        ssim(torch.rand(1, 1, 5, 16), torch.rand(1, 1, 5, 16))
    with pytest.raises(ValueError, match="odd"):
        ssim(x, x, win_size=6)
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ssim(bad, x)
