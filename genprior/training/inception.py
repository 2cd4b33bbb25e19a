"""The Inception-v3 of FID: 2048-d pool3 features with the weights of pytorch-fid (TF's 2015-12-05 Inception).

`FIDInception` is the network the FID papers use: torchvision's Inception-v3 layout (same layer names, so
pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` loads strictly) with the TF port's differences, as in
pytorch-fid's ``fid_inception_v3()``:

- BatchNorm eps 0.001 after every bias-free convolution, then ReLU;
- the pool branches of Mixed_5b..5d, 6b..6e and 7b average 3x3 windows *without* the zero padding
  (``count_include_pad=False``, as TF), and Mixed_7c's pool branch is a 3x3 *max* pool;
- 1008 classes in ``fc`` (kept so the file loads; FID does not use it), no auxiliary classifier.

Images (N, 1|3, H, W), uint8 or float in [0, 1], grey repeated to RGB, are resized to 299x299 (bilinear,
``align_corners=False``) and mapped to [-1, 1], as pytorch-fid's ``InceptionV3(resize_input=True,
normalize_input=True)``; the features are the global average of Mixed_7c, (N, 2048).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, GenpriorError, UnsafePickleError

__all__ = ["FIDInception", "load_fid_inception", "inception_features", "WEIGHTS_FILENAME", "WEIGHTS_URL",
           "INPUT_SIZE", "FEATURE_DIM"]

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILENAME}"
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
_OPTIONAL_SUFFIX = ".num_batches_tracked"  # BatchNorm's step counter: absent from older state dicts, never used


class _Conv(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001), ReLU: torchvision's ``BasicConv2d`` (``conv``, ``bn``)."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_tf(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average over the valid pixels only (TF's padding='SAME' average pool)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _MixedA(nn.Module):
    """Mixed_5b..5d (35x35): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1 -> 224 + ``pool_features`` channels."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1 = _Conv(cin, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_tf(x))], 1)


class _MixedB(nn.Module):
    """Mixed_6a (35 -> 17 px): 3x3/2 | 1x1-3x3-3x3/2 | max-pool/2 -> 768 channels."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _MixedC(nn.Module):
    """Mixed_6b..6e (17x17), factorised 7x7: 1x1 | 1x7-7x1 | 7x1-1x7-7x1-1x7 | avg-pool-1x1 -> 768 channels."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _Conv(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _Conv(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            d = conv(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool_tf(x))], 1)


class _MixedD(nn.Module):
    """Mixed_7a (17 -> 8 px): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max-pool/2 -> 1280 channels."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = _Conv(cin, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _MixedE(nn.Module):
    """Mixed_7b / 7c (8x8): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | pool-1x1 -> 2048 channels.

    The pool is TF's padding-excluding 3x3 average in Mixed_7b and a 3x3 max pool in Mixed_7c (``max_pool``).
    """

    def __init__(self, cin: int, *, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(cin, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3dbl = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_tf(x)
        return torch.cat([self.branch1x1(x), b3, b3dbl, self.branch_pool(pooled)], 1)


class FIDInception(nn.Module):
    """FID's Inception-v3: images (N, 1|3, H, W), uint8 or float in [0, 1] -> pool3 features (N, 2048) float.

    Randomly initialised; use `load_fid_inception` for the real weights. Layer names and state-dict keys are
    those of pytorch-fid's ``fid_inception_v3()`` (torchvision's ``Inception3`` without ``AuxLogits``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _MixedA(192, pool_features=32)
        self.Mixed_5c = _MixedA(256, pool_features=64)
        self.Mixed_5d = _MixedA(288, pool_features=64)
        self.Mixed_6a = _MixedB(288)
        self.Mixed_6b = _MixedC(768, c7=128)
        self.Mixed_6c = _MixedC(768, c7=160)
        self.Mixed_6d = _MixedC(768, c7=160)
        self.Mixed_6e = _MixedC(768, c7=192)
        self.Mixed_7a = _MixedD(768)
        self.Mixed_7b = _MixedE(1280, max_pool=False)
        self.Mixed_7c = _MixedE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)  # the 1008-way classifier: in the weights file, unused

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _to_inception_input(images.to(self.fc.weight.device))
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (N, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)  # ... (N, 768, 17, 17) ... (N, 2048, 8, 8)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def _to_inception_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float (N, 1|3, H, W) -> float (N, 3, 299, 299) in [-1, 1] (bilinear resize, then 2x - 1)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GenpriorError(f"images must be (N, 1 or 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        x = images.float() / 255
    elif images.is_floating_point():
        x = images.float()
    else:
        raise GenpriorError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1


def _names(keys: set[str], limit: int = 5) -> str:
    first = sorted(keys)[:limit]
    return ", ".join(first) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _check_state_dict(obj: Any, model: FIDInception, source: str) -> dict[str, torch.Tensor]:
    """``obj`` as a state dict of `FIDInception`, or a `CheckpointError` naming what is wrong."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a state dict (a mapping of str -> Tensor), got "
                              f"{type(obj).__name__}")
    bad = {str(k): type(v).__name__ for k, v in obj.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)}
    if bad:
        shown = ", ".join(f"{k!r}: {t}" for k, t in sorted(bad.items())[:5])
        raise CheckpointError(f"{source}: not a flat state dict of tensors; {len(bad)} entries are not "
                              f"str -> Tensor ({shown})")
    want = model.state_dict()
    missing = {k for k in want if k not in obj and not k.endswith(_OPTIONAL_SUFFIX)}
    unexpected = set(obj) - set(want)
    if missing or unexpected:
        parts = ([f"{len(missing)} missing keys ({_names(missing)})"] if missing else []) + \
                ([f"{len(unexpected)} unexpected keys ({_names(unexpected)})"] if unexpected else [])
        raise CheckpointError(f"{source}: not pytorch-fid's FID Inception weights: {'; '.join(parts)}")
    wrong = {k: (tuple(obj[k].shape), tuple(v.shape)) for k, v in want.items() if k in obj and obj[k].shape != v.shape}
    if wrong:
        shown = ", ".join(f"{k} {got} (expected {exp})" for k, (got, exp) in sorted(wrong.items())[:5])
        raise CheckpointError(f"{source}: {len(wrong)} tensors have the wrong shape: {shown}")
    sd = dict(obj)
    for k in want:
        if k not in sd:  # num_batches_tracked
            sd[k] = torch.zeros((), dtype=torch.long)
    return sd


def load_fid_inception(path: str | os.PathLike) -> FIDInception:
    """`FIDInception` with pytorch-fid's weights (``pt_inception-2015-12-05-6726825d.pth``), in eval mode.

    The file is read with ``torch.load(weights_only=True)``: a pickle asking for any other global raises
    `UnsafePickleError` and nothing in it runs. It must be a flat mapping of str -> Tensor with exactly the
    network's keys and shapes (BatchNorm's ``num_batches_tracked`` may be absent); otherwise `CheckpointError`
    names the missing, unexpected or misshapen keys.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = next((ln.removeprefix("WeightsUnpickler error: ") for ln in lines if "WeightsUnpickler" in ln),
                      lines[0] if lines else type(exc).__name__)
        raise UnsafePickleError(f"{path}: refused to load (torch.load weights_only=True): {reason}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable torch file (truncated or corrupt?): {exc}") from None
    model = FIDInception()
    model.load_state_dict(_check_state_dict(obj, model, str(path)), strict=True)
    model.requires_grad_(False)
    return model.eval()


@torch.no_grad()
def inception_features(model: FIDInception, images: torch.Tensor, *, batch: int = 50) -> np.ndarray:
    """(N, 2048) float64 pool3 features of uint8 / [0, 1] images (N, C, H, W), ``batch`` images at a time."""
    out = [model(images[i:i + batch]).double().cpu().numpy() for i in range(0, images.shape[0], batch)]
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM))
