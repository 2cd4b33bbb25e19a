"""In-painting: some pixels are observed, the others (the hole) are replaced by a constant.

Convention everywhere in genprior: a mask is 1 / True where the pixel is OBSERVED and 0 / False in the HOLE.
(BRGM's code computes the opposite array, ``mask = hole``; mask *files* are read as BRGM reads them.)

``A(x) = x * mask + fill * (1 - mask)``. BRGM fills with ~0 (PyTorch, 1/255) or white (TF); the default here is
0. Hole pixels of ``A(G(w))`` and ``y`` are equal, so they add nothing to a pixel loss.

``A_dagger(y)`` is the identity on observed pixels and fills the hole with the mean of the observed pixels of
that image and channel (0.5 if an image has no observed pixel): the image-sized estimate a baseline starts
from. It is an exact right inverse on the observed pixels, so ``A(A_dagger(A(x))) == A(x)``. A soft (float)
mask ``m`` is inverted as ``(y - fill (1 - m)) / m`` where ``m > 0``.

Mask makers, all returning a bool tensor (H, W) with True = observed:

* `mask_from_file` (BRGM's rule: the hole is where the first channel equals its minimum; transparent pixels
  of an image with a varying alpha channel are hole too), `save_mask` writes one back;
* `brgm_mask` (BRGM's seven face masks, redrawn from their geometry at any resolution);
* `center_mask`, `random_boxes_mask` (BIGPrior), `random_pixels_mask`;
* `make_mask(spec, size)` parses ``"center"``, ``"center:0.3"``, ``"brgm-3"``, ``"boxes"``, ``"boxes:2-5"``,
  ``"pixels"``, ``"pixels:0.8"`` or a file path.
"""

from __future__ import annotations

import base64
import math
import os
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .base import Physics, Shape, check_image, check_shape, register

SizeLike = int | Sequence[int]

# ---------------------------------------------------------------------------------------------- mask makers


def _hw(size: SizeLike) -> tuple[int, int]:
    """``size`` as (H, W): an int is a square side."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    else:
        try:
            h, w = (int(s) for s in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or (H, W), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


# BRGM's masks as hole rectangles (x0, x1, y0, y1), inclusive pixel coordinates on the 1024 x 1024 grid.
# From BRGM.md §1.2: the bar (3) and mouth (5) coordinates are given; the halves and the quadrant use the
# boundary that reproduces the 1024 table (0: 50.2 %, 1: 49.8 %, 4: 25.2 %, 6: 51.2 %), so 0 and 1 are
# complementary as in the shipped files. The eye squares (2) are not given: two squares of side 171 centred on
# the eyes of an FFHQ-aligned face (eye distance ~ 1/4 of the width, eye line slightly above the centre),
# which covers 5.58 % (table: 5.6 % at 1024, 5.1 % at 256).
BRGM_MASKS: dict[int, tuple[tuple[int, int, int, int], ...]] = {
    0: ((510, 1023, 0, 1023),),  # right half
    1: ((0, 509, 0, 1023),),  # left half
    2: ((299, 469, 399, 569), (555, 725, 399, 569)),  # two squares over the eyes
    3: ((515, 746, 185, 839),),  # vertical bar
    4: ((510, 1023, 0, 513),),  # top-right quadrant
    5: ((286, 750, 616, 867),),  # mouth rectangle
    6: ((0, 1023, 500, 1023),),  # bottom half
}
# Share of pixels in the hole of the shipped files (BRGM.md §1.2), at 1024 and 256.
BRGM_HOLE_FRACTIONS = {
    1024: {0: 0.502, 1: 0.498, 2: 0.056, 3: 0.145, 4: 0.252, 5: 0.112, 6: 0.512},
    256: {0: 0.500, 1: 0.496, 2: 0.051, 3: 0.138, 4: 0.248, 5: 0.107, 6: 0.508},
}


def _scale(v: int, n: int) -> int:
    """A 1024-grid pixel edge mapped to an n-pixel axis (rounded half up)."""
    return int(math.floor(v * n / 1024 + 0.5))


def brgm_mask(index: int, size: SizeLike = 1024) -> torch.Tensor:
    """BRGM's face mask ``index`` (0..6) at ``size``: bool (H, W), True = observed.

    0 right half, 1 left half, 2 two squares over the eyes, 3 vertical bar, 4 top-right quadrant, 5 mouth,
    6 bottom half; coordinates on the 1024 grid are scaled by size / 1024 (see `BRGM_MASKS`).
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or int(index) not in BRGM_MASKS:
        raise ValueError(f"BRGM mask index must be 0..6, got {index!r}")
    h, w = _hw(size)
    observed = torch.ones(h, w, dtype=torch.bool)
    for x0, x1, y0, y1 in BRGM_MASKS[int(index)]:
        observed[_scale(y0, h):_scale(y1 + 1, h), _scale(x0, w):_scale(x1 + 1, w)] = False
    return observed


def center_mask(size: SizeLike, frac: float = 0.25) -> torch.Tensor:
    """Hole = centred box of side ``round(frac * side)`` on each axis (256, 0.25: rows/cols 96..159)."""
    h, w = _hw(size)
    if not 0 < frac < 1:
        raise ValueError(f"frac must be in (0, 1), got {frac!r}")
    observed = torch.ones(h, w, dtype=torch.bool)
    bh, bw = max(1, round(frac * h)), max(1, round(frac * w))
    top, left = (h - bh) // 2, (w - bw) // 2
    observed[top:top + bh, left:left + bw] = False
    return observed


def random_boxes_mask(size: SizeLike, n: int | Sequence[int] = (2, 4), seed: int | None = None) -> torch.Tensor:
    """BIGPrior's randomized rectangles: ``n`` boxes (an int, or (lo, hi) drawn uniformly, inclusive).

    Each side is ``|N(side/4, side/8)|``, redrawn until it is larger than side/32 and fits in the image; the
    box is placed uniformly where it fits. ``seed`` makes it reproducible (numpy ``default_rng``).
    """
    h, w = _hw(size)
    if isinstance(n, (int, np.integer)):
        lo = hi = int(n)
    else:
        lo, hi = (int(v) for v in n)
    if not 1 <= lo <= hi:
        raise ValueError(f"n must be a positive int or (lo, hi) with 1 <= lo <= hi, got {n!r}")
    rng = np.random.default_rng(seed)

    def side(length: int) -> int:
        for _ in range(1000):
            s = int(round(abs(rng.normal(length / 4, length / 8))))
            if length / 32 < s <= length:
                return s
        return max(1, length // 4)

    observed = torch.ones(h, w, dtype=torch.bool)
    for _ in range(int(rng.integers(lo, hi + 1))):
        bh, bw = side(h), side(w)
        top, left = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        observed[top:top + bh, left:left + bw] = False
    return observed


def random_pixels_mask(size: SizeLike, drop: float = 0.5, seed: int | None = None) -> torch.Tensor:
    """Each pixel independently in the hole with probability ``drop`` (numpy ``default_rng(seed)``)."""
    h, w = _hw(size)
    if not 0 <= drop <= 1:
        raise ValueError(f"drop must be in [0, 1], got {drop!r}")
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((h, w)) >= drop)


def _read_channels(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """First colour channel and (if any) alpha channel of an image file, as 2-D arrays."""
    try:
        with Image.open(path) as img:
            img.load()
            has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                img.mode == "P" and "transparency" in img.info)
            if has_alpha:
                arr = np.asarray(img.convert("RGBA"))
                return arr[..., 0], arr[..., 3]
            if img.mode in ("1", "L", "I", "F") or img.mode.startswith("I;16"):
                arr = np.asarray(img)
                return (arr if arr.ndim == 2 else arr[..., 0]), None
            return np.asarray(img.convert("RGB"))[..., 0], None
    except FileNotFoundError:
        raise ValueError(f"mask file not found: {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read mask image {path}: {exc}") from None


def mask_from_file(path: str | os.PathLike, size: SizeLike | None = None) -> torch.Tensor:
    """Read a mask image: bool (H, W), True = observed.

    As BRGM: the hole is where the first channel equals its minimum (black pixels of a black/white mask).
    If the image has an alpha channel that varies, its most transparent pixels are hole too. A uniform image is
    all hole when black and all observed otherwise (callers decide whether that is usable). ``size`` (int or (H, W)) resizes with nearest neighbour.
    """
    path = Path(path)
    colour, alpha = _read_channels(path)
    hole = np.zeros(colour.shape, dtype=bool)
    informative = False
    for channel in (colour, alpha):
        if channel is not None and channel.min() != channel.max():
            hole |= channel == channel.min()
            informative = True
    if not informative:  # one value everywhere: black is all hole, anything brighter is all observed
        hole |= bool(colour.max() == 0)
    observed = ~hole
    if size is not None:
        h, w = _hw(size)
        if (h, w) != observed.shape:
            img = Image.fromarray(observed.astype(np.uint8) * 255, mode="L")
            observed = np.asarray(img.resize((w, h), Image.NEAREST)) > 127
    return torch.from_numpy(np.ascontiguousarray(observed))


def save_mask(mask: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a mask as an 8-bit grey PNG (white = observed, black = hole) that `mask_from_file` reads back."""
    m = _as_mask_tensor(mask)
    if m.shape[0] != 1:
        raise ValueError(f"save_mask writes one mask, got a batch of {m.shape[0]}")
    arr = (m[0, 0] > 0.5).cpu().numpy().astype(np.uint8) * 255
    path = Path(path)
    Image.fromarray(arr, mode="L").save(path)
    return path


def make_mask(spec: str, size: SizeLike, seed: int | None = None) -> torch.Tensor:
    """A mask from a short spec: bool (H, W), True = observed.

    ``"center"`` / ``"center:0.3"`` (hole side fraction), ``"brgm-3"`` (BRGM's mask 0..6), ``"boxes"`` /
    ``"boxes:3"`` / ``"boxes:2-5"`` (random rectangles), ``"pixels"`` / ``"pixels:0.8"`` (fraction dropped),
    or the path of a mask image (resized to ``size`` with nearest neighbour). ``seed`` is for the random ones.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"mask spec must be a non-empty string, got {spec!r}")
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    try:
        if kind == "center":
            return center_mask(size, float(arg) if arg else 0.25)
        if kind.startswith("brgm") and not os.path.exists(spec):
            index = arg or kind[4:].lstrip("-_")
            return brgm_mask(int(index), size)
        if kind == "boxes":
            if not arg:
                return random_boxes_mask(size, seed=seed)
            lo, _, hi = arg.partition("-")
            return random_boxes_mask(size, (int(lo), int(hi or lo)), seed=seed)
        if kind == "pixels":
            return random_pixels_mask(size, float(arg) if arg else 0.5, seed=seed)
    except ValueError as exc:
        raise ValueError(f"bad mask spec {spec!r}: {exc}") from None
    if os.path.exists(spec):
        return mask_from_file(spec, size)
    raise ValueError(f"unknown mask spec {spec!r} and no such file; expected a file path, 'center[:frac]', "
                     "'brgm-K' (K = 0..6), 'boxes[:n or lo-hi]' or 'pixels[:drop]'")


# ---------------------------------------------------------------------------------------------- operator


def _as_mask_tensor(mask: Any) -> torch.Tensor:
    """A mask as float32 (M, 1, H, W) in [0, 1], from (H, W), (1, H, W) or (M, 1, H, W), bool or float."""
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    elif not isinstance(mask, torch.Tensor):
        try:
            mask = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"mask must be a tensor or array, got {type(mask).__name__}") from None
    shape = tuple(mask.shape)
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3 and shape[0] == 1:
        mask = mask[None]
    elif not (mask.ndim == 4 and shape[1] == 1):
        raise ValueError(f"mask must have shape (H, W), (1, H, W) or (N, 1, H, W), got {shape}")
    if mask.dtype == torch.bool:
        return mask.float()
    mask = mask.float()
    if not bool(torch.isfinite(mask).all()) or mask.min() < 0 or mask.max() > 1:
        raise ValueError("a float mask must hold finite values in [0, 1] (1 = observed, 0 = hole)")
    return mask


def _encode_mask(mask: torch.Tensor) -> dict[str, Any]:
    """Compact JSON form: bits for binary masks, float32 bytes otherwise (both zlib + base64)."""
    arr = mask.detach().cpu().numpy()
    if np.isin(arr, (0.0, 1.0)).all():
        payload, key = np.packbits(arr.astype(bool).ravel()).tobytes(), "bits"
    else:
        payload, key = arr.astype("<f4").tobytes(), "float32"
    return {"shape": list(arr.shape), key: base64.b64encode(zlib.compress(payload, 9)).decode("ascii")}


def _decode_mask(data: dict[str, Any]) -> torch.Tensor:
    try:
        shape = tuple(int(s) for s in data["shape"])
        count = int(np.prod(shape))
        if "bits" in data:
            bits = np.frombuffer(zlib.decompress(base64.b64decode(data["bits"])), dtype=np.uint8)
            arr = np.unpackbits(bits, count=count).astype(np.float32)
        else:
            arr = np.frombuffer(zlib.decompress(base64.b64decode(data["float32"])), dtype="<f4").copy()
        return torch.from_numpy(arr.reshape(shape))
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise ValueError(f"bad encoded mask in config: {exc}") from None


@register
class Inpainting(Physics):
    """``A(x) = x * mask + fill * (1 - mask)``; mask 1 = observed, 0 = hole.

    ``mask``: (H, W), (1, H, W) or (M, 1, H, W), bool or float in [0, 1]. With M masks, image i of a batch uses
    mask ``i % M``: the batch must be a multiple of M (so ``y.repeat(k, 1, 1, 1)`` keeps each image's mask).
    x (N, C, H, W) -> y of the same shape; x must have the mask's H, W.
    """

    name = "inpaint"

    def __init__(self, mask: Any, *, sigma: float = 0.0, fill: float = 0.0) -> None:
        super().__init__(sigma=sigma)
        fill = float(fill)
        if not math.isfinite(fill):
            raise ValueError(f"fill must be finite, got {fill!r}")
        self.fill = fill
        self.register_buffer("mask", _as_mask_tensor(mask))

    @classmethod
    def from_spec(cls, spec: str, size: SizeLike, *, seed: int | None = None, sigma: float = 0.0,
                  fill: float = 0.0) -> "Inpainting":
        """``Inpainting(make_mask(spec, size, seed), sigma=sigma, fill=fill)``, e.g. ``from_spec("brgm-3", 256)``."""
        return cls(make_mask(spec, size, seed=seed), sigma=sigma, fill=fill)

    @property
    def observed(self) -> torch.Tensor:
        """Bool (M, 1, H, W): where a pixel carries information (mask > 0)."""
        return self.mask > 0

    @property
    def hole_fraction(self) -> float:
        return float((self.mask == 0).float().mean())

    def out_shape(self, in_shape: Sequence[int]) -> Shape:
        n, c, h, w = check_shape(in_shape)
        m, _, mh, mw = self.mask.shape
        if (h, w) != (mh, mw):
            raise ValueError(f"image and mask sizes differ: expected {mh}x{mw} (the mask), got {h}x{w}")
        if n % m:
            raise ValueError(f"batch and mask batch differ: expected a multiple of {m} images (one per mask), "
                             f"got {n}")
        return (n, c, h, w)

    def _mask_like(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mask.to(device=x.device, dtype=x.dtype)
        reps = x.shape[0] // m.shape[0]
        return m if reps == 1 or m.shape[0] == 1 else m.repeat(reps, 1, 1, 1)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        self.check_input(x)
        m = self._mask_like(x)
        return x * m if self.fill == 0 else x * m + self.fill * (1 - m)

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        check_image(y, "observation")
        self.out_shape(y.shape)
        m = self._mask_like(y)
        obs = m > 0
        x = (y - self.fill * (1 - m)) / torch.where(obs, m, torch.ones_like(m))
        obs_f = obs.to(y.dtype).expand_as(y)
        count = obs_f.sum(dim=(2, 3), keepdim=True)
        mean = torch.where(count > 0, (x * obs_f).sum(dim=(2, 3), keepdim=True) / count.clamp_min(1),
                           torch.full_like(count, 0.5))
        return torch.where(obs, x, mean)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "fill": self.fill, "mask": _encode_mask(self.mask)}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask={tuple(self.mask.shape)}, hole_fraction={self.hole_fraction:.4f}"

    @classmethod
    def from_config(cls, kwargs: dict[str, Any]) -> "Inpainting":
        kwargs = dict(kwargs)
        if isinstance(kwargs.get("mask"), dict):
            kwargs["mask"] = _decode_mask(kwargs["mask"])
        return cls(**kwargs)
