"""Image files <-> tensors. Tensors are float32 (N, C, H, W) in [0, 1]; C is 1 (grey) or 3 (RGB).

Bit depth: 8-bit files are divided by 255 and 16-bit PNG/TIFF by 65535, at full depth (never squeezed to 8
bits); 32-bit float TIFFs are taken as they are and must lie in [0, 1]. Pillow reads 16-bit *grey* files;
16-bit *colour* files need pypng (PNG) or tifffile (TIFF), the extra ``genprior[scientific]``; without them such
a file is refused rather than read at 8 bits.

Channels: `read_image_info` also says, in words, every conversion made to reach the requested channels (alpha
dropped, grey repeated, colour to luma, CMYK to RGB) so that a caller can state it; `read_image` returns the
tensor alone.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import GenpriorError
from .atomic import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_GREY_MODES = ("1", "L", "LA", "La", "I", "F") + tuple(f"I;16{e}" for e in ("", "B", "L", "N"))
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's convert("L")
_EXTRA = "pip install 'genprior[scientific]'"


@dataclass(frozen=True)
class ImageRead:
    """What `read_image_info` read: the image and how it got there from the file."""

    image: torch.Tensor  # (1, C, H, W) float32 in [0, 1]
    bit_depth: int  # bits per sample in the file: 1, 8, 16 or 32 (float)
    mode: str  # the file's layout as Pillow names it: "L", "I;16", "RGB", "RGBA", "P", "CMYK", ...
    conversions: tuple[str, ...] = ()  # what was done to reach the channels, in words; () when nothing


def read_image(path: str | os.PathLike, channels: int | None = None) -> torch.Tensor:
    """(1, C, H, W) in [0, 1]; ``channels`` 1 or 3 converts (ITU-R 601 luma for grey), None keeps the file's."""
    return read_image_info(path, channels).image


def read_image_info(path: str | os.PathLike, channels: int | None = None) -> ImageRead:
    """Read ``path`` at its full bit depth; ``channels`` 1 or 3 (None: 1 for a grey file, else 3).

    Raises GenpriorError naming the file for a missing or unreadable file, samples genprior cannot map to
    [0, 1] without guessing (signed or 32-bit integers, floats outside [0, 1]), or a bad ``channels``.
    """
    path = Path(path)
    if channels not in (None, 1, 3):
        raise GenpriorError(f"{path}: channels must be 1 or 3, not {channels}")
    try:
        with Image.open(path) as im:
            bits, mode = _file_bits(im), im.mode
            im.load()
            if bits <= 8:
                return _read_8bit(im, channels)
            arr = _high_depth_array(im, path, bits)
    except FileNotFoundError:
        raise GenpriorError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise GenpriorError(f"{path}: not a readable image ({exc})") from None
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        raise GenpriorError(f"{path}: float samples span [{lo:.4g}, {hi:.4g}] (or are not finite), outside [0, 1]; "
                            "rescale the image to [0, 1] first")
    image, layout, conversions = _to_channels(arr, mode, channels)
    return ImageRead(image, bits, mode if arr.ndim == 2 else layout, conversions)


def _file_bits(im: Image.Image) -> int:
    """Bits per sample in the file (before Pillow narrows 16-bit colour to 8 bits on load)."""
    if im.format == "TIFF":
        bps = im.tag_v2.get(258, 8)
        return max(bps) if isinstance(bps, tuple) else int(bps)
    if im.format == "PNG" and im.tile:
        raw = im.tile[0].args
        raw = raw[0] if isinstance(raw, tuple) else raw
        return 16 if ";16" in str(raw) else 8
    return {"I": 32, "F": 32}.get(im.mode, 16 if im.mode.startswith("I;16") else 8)


def _read_8bit(im: Image.Image, channels: int | None) -> ImageRead:
    """Pillow's own conversion (its integer luma), so 8-bit results stay exactly as they always were."""
    grey = im.mode in _GREY_MODES or (im.mode == "P" and _grey_palette(im))
    target = "L" if (channels or (1 if grey else 3)) == 1 else "RGB"
    has_alpha = im.mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in im.info
    arr = np.asarray(im.convert(target), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr.copy())
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    return ImageRead(x[None], 1 if im.mode == "1" else 8, im.mode,
                     _describe(im.mode, grey, has_alpha, 1 if target == "L" else 3))


def _grey_palette(im: Image.Image) -> bool:
    pal = np.asarray(im.getpalette() or [0, 0, 0]).reshape(-1, 3)
    return bool((pal == pal[:, :1]).all())


def _describe(mode: str, grey: bool, has_alpha: bool, channels: int) -> tuple[str, ...]:
    """The conversions from a ``mode`` file to ``channels`` channels, in words."""
    alpha = ", alpha dropped" if has_alpha else ""
    if grey and channels == 3:
        return (f"converted {mode} to RGB (grey repeated to 3 channels{alpha})" if has_alpha
                else "grey image repeated to 3 channels",)
    if not grey and channels == 1:
        return (f"converted {mode} to grey (ITU-R 601 luma{alpha})",)
    if has_alpha:
        return (f"converted {mode} to {'grey' if channels == 1 else 'RGB'} (alpha dropped)",)
    if not grey and mode not in ("RGB", "P"):
        return (f"converted {mode} to RGB",)
    return ()


def _high_depth_array(im: Image.Image, path: Path, bits: int) -> np.ndarray:
    """(H, W) or (H, W, S) float32 in [0, 1] (floats as stored) from a file of more than 8 bits per sample."""
    if im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PNG"):
        return np.asarray(im).astype(np.float32) / 65535.0
    if im.mode == "F":
        return np.asarray(im, dtype=np.float32)
    if im.mode == "I":
        raise GenpriorError(f"{path}: {bits}-bit signed integer samples are not supported; "
                            "convert it to unsigned 16-bit or 32-bit float first")
    if im.format == "PNG":
        return _read_png16(path)
    if im.format == "TIFF":
        return _read_tiff(path)
    raise GenpriorError(f"{path}: {bits}-bit {im.mode} {im.format} images are not supported; use 16-bit PNG or TIFF")


def _read_png16(path: Path) -> np.ndarray:
    try:
        import png
    except ImportError:
        raise GenpriorError(f"{path}: a 16-bit colour PNG needs pypng to be read at full depth ({_EXTRA})") from None
    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])
    except png.Error as exc:
        raise GenpriorError(f"{path}: not a readable PNG ({exc})") from None
    return arr.astype(np.float32) / float(2 ** info["bitdepth"] - 1)


def _read_tiff(path: Path) -> np.ndarray:
    try:
        import tifffile
    except ImportError:
        raise GenpriorError(f"{path}: a 16-bit colour TIFF needs tifffile to be read at full depth ({_EXTRA})") from None
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        arr, axes = page.asarray(), page.axes
    if axes.startswith("S"):  # planar: samples first
        arr = np.moveaxis(arr, 0, -1)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    if arr.dtype.kind != "u":
        raise GenpriorError(f"{path}: {arr.dtype} TIFF samples are not supported; use unsigned integers or float32")
    return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)


def _to_channels(arr: np.ndarray, mode: str, channels: int | None) -> tuple[torch.Tensor, str, tuple[str, ...]]:
    """(H, W[, S]) float32 -> ((1, C, H, W), layout, conversions); S = 1..4 samples is L, LA, RGB, RGBA."""
    arr = arr[..., None] if arr.ndim == 2 else arr
    samples = arr.shape[-1]
    if samples not in (1, 2, 3, 4):
        raise GenpriorError(f"{mode} image with {samples} samples per pixel is not supported")
    grey, has_alpha = samples <= 2, samples in (2, 4)
    layout = ("L", "LA", "RGB", "RGBA")[samples - 1]
    arr = arr[..., : 1 if grey else 3]
    want = channels or (1 if grey else 3)
    if grey and want == 3:
        arr = np.repeat(arr, 3, axis=-1)
    elif not grey and want == 1:
        arr = (arr @ np.asarray(_LUMA, dtype=np.float32))[..., None]
    x = torch.from_numpy(arr.transpose(2, 0, 1).copy())
    return x[None], layout, _describe(layout, grey, has_alpha, want)


def _quantise(x: torch.Tensor, maxval: int) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) integers 0..maxval, rounding to nearest (int32 array)."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected (C, H, W) with C in (1, 3), got {tuple(x.shape)}")
    arr = (x.detach().float().clamp(0, 1) * maxval + 0.5).floor().to(torch.int32).cpu().numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8, rounding to nearest."""
    return _quantise(x, 255).astype(np.uint8)


def to_uint16(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint16, rounding to nearest."""
    return _quantise(x, 65535).astype(np.uint16)


def save_image(x: torch.Tensor, path: str | os.PathLike, *, overwrite: bool = False, bits: int = 8) -> Path:
    """Write (C, H, W) or (1, C, H, W) in [0, 1] to ``path`` atomically; refuses to overwrite by default.

    ``bits=16`` writes a 16-bit PNG or TIFF (for 16-bit inputs); colour needs pypng or tifffile.
    """
    path = Path(path)
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError("save_image writes one image; use image_grid for a batch")
        x = x[0]
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    if bits not in (8, 16):
        raise GenpriorError(f"{path}: bits must be 8 or 16, not {bits}")
    if bits == 16 and fmt not in ("PNG", "TIFF"):
        raise GenpriorError(f"{path}: {fmt} holds 8 bits per sample; write .png or .tif for 16 bits")
    with atomic_path(path, overwrite=overwrite) as tmp:
        if bits == 8:
            Image.fromarray(to_uint8(x)).save(tmp, format=fmt)
        else:
            _save_16bit(to_uint16(x), tmp, fmt)
    return path


def _save_16bit(arr: np.ndarray, tmp: Path, fmt: str) -> None:
    if arr.ndim == 2 and fmt == "PNG":
        Image.fromarray(arr).save(tmp, format="PNG")  # Pillow writes 16-bit grey PNG itself
        return
    try:
        if fmt == "TIFF":
            import tifffile

            tifffile.imwrite(tmp, arr, photometric="minisblack" if arr.ndim == 2 else "rgb")
        else:
            import png

            png.from_array(arr.reshape(arr.shape[0], -1), "RGB;16").save(str(tmp))
    except ImportError:
        raise GenpriorError(f"writing a 16-bit {'grey' if arr.ndim == 2 else 'colour'} {fmt} needs "
                            f"{'tifffile' if fmt == 'TIFF' else 'pypng'} ({_EXTRA})") from None


def image_grid(x: torch.Tensor, cols: int | None = None, pad: int = 2) -> torch.Tensor:
    """(N, C, H, W) -> one (C, H', W') picture, ``cols`` images per row, white padding between."""
    n, c, h, w = x.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad, dtype=x.dtype, device=x.device)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    return grid
