"""Training data held in memory as one uint8 tensor (N, C, R, R).

Sources: a folder of images (PNG, JPEG, WebP, BMP, TIFF; searched recursively, sorted by relative path), a
zip archive of such images, or the MNIST ``idx`` files (``*-images-idx3-ubyte[.gz]``, 28x28 padded to 32x32).
Conversions are stated, never silent: the channel conversion in a log line, differing sizes in a warning.
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import GenpriorError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


class DatasetError(GenpriorError):
    """A training data set cannot be used as asked (empty, corrupt file, bad resolution...)."""


def check_resolution(resolution: int) -> int:
    """``resolution`` as an int if it is a power of two >= 4, else `DatasetError`."""
    try:
        r = int(resolution)
    except (TypeError, ValueError):
        raise DatasetError(f"resolution must be an integer power of two >= 4, not {resolution!r}") from None
    if r != resolution or r < 4 or r & (r - 1):
        raise DatasetError(f"resolution must be a power of two >= 4 (4, 8, ..., 64, 128, ...), not {resolution!r}")
    return r


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def load_dataset(source: str | os.PathLike, *, resolution: int, channels: int | None = None,
                 max_images: int | None = None, log: Callable[[str], None] | None = _log_default) -> torch.Tensor:
    """All images of ``source`` (folder, .zip, or MNIST idx file) as uint8 (N, C, resolution, resolution).

    ``channels``: 1 (grey) or 3 (RGB); None picks 1 when every image is grey, else 3.
    """
    path = Path(source)
    resolution = check_resolution(resolution)
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1 (grey) or 3 (RGB), not {channels!r}")
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    name = path.name.lower()
    if path.is_file() and ("idx" in name or name.endswith(".ubyte")):
        return load_mnist_idx(path, resolution=resolution, channels=channels or 1, max_images=max_images, log=log)
    if path.is_file() and zipfile.is_zipfile(path):
        return load_image_zip(path, resolution=resolution, channels=channels, max_images=max_images, log=log)
    if path.is_dir():
        return load_image_folder(path, resolution=resolution, channels=channels, max_images=max_images, log=log)
    raise DatasetError(f"{path}: not a folder of images, a zip archive or an MNIST idx file")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden files skipped), sorted by relative path."""
    folder = Path(folder)
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def load_image_folder(folder: str | os.PathLike, *, resolution: int, channels: int | None = None,
                      max_images: int | None = None, log: Callable[[str], None] | None = _log_default) -> torch.Tensor:
    """The images under ``folder`` (recursive) as uint8 (N, C, R, R); see `load_dataset`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    files = list_images(folder)
    if not files:
        raise DatasetError(f"{folder}: no images found (looked recursively for "
                           f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    if max_images is not None:
        files = files[:max_images]

    def items() -> Iterable[tuple[str, Callable[[], Image.Image]]]:
        for f in files:
            yield str(f), (lambda f=f: Image.open(f))

    return _load_images(items(), len(files), str(folder), resolution=resolution, channels=channels, log=log)


def load_image_zip(archive: str | os.PathLike, *, resolution: int, channels: int | None = None,
                   max_images: int | None = None, log: Callable[[str], None] | None = _log_default) -> torch.Tensor:
    """The images inside a zip archive as uint8 (N, C, R, R); see `load_dataset`."""
    archive = Path(archive)
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist() if not n.endswith("/") and Path(n).suffix.lower() in IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in Path(n).parts))
        if not names:
            raise DatasetError(f"{archive}: the archive holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if max_images is not None:
            names = names[:max_images]

        def items() -> Iterable[tuple[str, Callable[[], Image.Image]]]:
            for n in names:
                yield f"{archive}:{n}", (lambda n=n: Image.open(io.BytesIO(zf.read(n))))

        return _load_images(items(), len(names), str(archive), resolution=resolution, channels=channels, log=log)


def _load_images(items: Iterable[tuple[str, Callable[[], Image.Image]]], count: int, source: str, *,
                 resolution: int, channels: int | None, log: Callable[[str], None] | None) -> torch.Tensor:
    resolution = check_resolution(resolution)
    images: list[Image.Image] = []
    modes: Counter[str] = Counter()
    sizes: Counter[tuple[int, int]] = Counter()
    for name, opener in items:
        try:
            with opener() as im:
                im.load()
                modes[im.mode] += 1
                sizes[im.size] += 1
                images.append(_to_square(im, resolution))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DatasetError(f"{name}: corrupt or unreadable image ({type(exc).__name__}: {exc})") from None
    all_grey = all(m in _GREY_MODES for m in modes)
    if channels is None:
        channels = 1 if all_grey else 3
    target = "L" if channels == 1 else "RGB"
    converted = sum(n for m, n in modes.items() if m != target)
    mode_text = ", ".join(f"{n} {m}" for m, n in modes.most_common())
    if log is not None:
        msg = f"{source}: {count} images ({mode_text}) -> {'grey' if channels == 1 else 'RGB'}"
        msg += f", {converted} converted" if converted else ", no conversion"
        log(msg)
    other = {s: n for s, n in sizes.items() if s != (resolution, resolution)}
    if other:
        listed = ", ".join(f"{n} of {w}x{h}" for (w, h), n in sorted(other.items(), key=lambda kv: -kv[1])[:5])
        warnings.warn(f"{source}: {sum(other.values())} of {count} images are not {resolution}x{resolution} "
                      f"({listed}{', ...' if len(other) > 5 else ''}); centre-cropped to square and resized to "
                      f"{resolution}x{resolution}", stacklevel=3)
    out = np.empty((len(images), channels, resolution, resolution), dtype=np.uint8)
    for i, im in enumerate(images):
        arr = np.asarray(_convert(im, target))
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return torch.from_numpy(out)


def _convert(im: Image.Image, target: str) -> Image.Image:
    """``im`` in mode L or RGB; alpha is composited over black, 16-bit grey scaled to 8 bits."""
    if im.mode == target:
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I") and arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / hi * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        im = Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert(target)


def _to_square(im: Image.Image, resolution: int) -> Image.Image:
    """Centre-crop to a square and resize to ``resolution`` (Lanczos); the image is copied out of its file."""
    w, h = im.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s))
    if im.size != (resolution, resolution):
        if im.mode not in ("L", "RGB", "RGBA"):
            im = _convert(im, "RGB" if im.mode not in _GREY_MODES else "L")
        im = im.resize((resolution, resolution), Image.LANCZOS)
    return im.copy()


def load_mnist_idx(path: str | os.PathLike, *, resolution: int = 32, channels: int = 1,
                   max_images: int | None = None, log: Callable[[str], None] | None = _log_default) -> torch.Tensor:
    """MNIST ``*-images-idx3-ubyte[.gz]`` as uint8 (N, C, R, R): 28x28 zero-padded to 32 (then resized if R != 32)."""
    path = Path(path)
    resolution = check_resolution(resolution)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: unreadable idx file ({exc})") from None
    if len(data) < 16 or int.from_bytes(data[:4], "big") != 0x00000803:
        raise DatasetError(f"{path}: not an MNIST image file (idx3-ubyte magic 0x00000803 missing)")
    n, h, w = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    if len(data) != 16 + n * h * w:
        raise DatasetError(f"{path}: truncated idx file ({len(data)} bytes for {n} images of {h}x{w})")
    arr = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h, w)
    if max_images is not None:
        arr = arr[:max_images]
    size = 1 << max(h, w).bit_length() - (1 if max(h, w) & (max(h, w) - 1) == 0 else 0)
    py, px = (size - h) // 2, (size - w) // 2
    arr = np.pad(arr, ((0, 0), (py, size - h - py), (px, size - w - px)))
    if size != resolution:
        warnings.warn(f"{path}: {h}x{w} digits padded to {size}x{size} and resized to {resolution}x{resolution}",
                      stacklevel=2)
        arr = np.stack([np.asarray(Image.fromarray(a).resize((resolution, resolution), Image.LANCZOS)) for a in arr])
    x = torch.from_numpy(np.ascontiguousarray(arr)).unsqueeze(1)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    if log is not None:
        log(f"{path}: {x.shape[0]} grey digits {h}x{w}, zero-padded to {size}x{size}"
            + (", repeated to RGB" if channels == 3 else ""))
    return x


def split_holdout(images: torch.Tensor, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out): the last ``holdout`` images (in load order) are held out."""
    if holdout < 0 or holdout >= images.shape[0]:
        raise DatasetError(f"cannot hold out {holdout} of {images.shape[0]} images")
    return images[: images.shape[0] - holdout], images[images.shape[0] - holdout:]


def load_training_images(data: str | os.PathLike | torch.Tensor, *, resolution: int, channels: int | None,
                         holdout: int = 0, log: Callable[[str], None] | None = _log_default) -> tuple[torch.Tensor, str]:
    """(uint8 training images (N, C, R, R) with the last ``holdout`` held out, a description of the source).

    ``data`` is anything `load_dataset` reads, or a uint8 tensor (N, C, R, R) checked against the settings.
    """
    if isinstance(data, torch.Tensor):
        images, desc = data, f"<tensor {tuple(data.shape)}>"
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DatasetError(f"a data tensor must be uint8 (N, C, R, R), got {images.dtype} {tuple(images.shape)}")
        if channels is not None and images.shape[1] != channels:
            raise DatasetError(f"the data tensor has {images.shape[1]} channels, not {channels}")
        if tuple(images.shape[2:]) != (resolution, resolution):
            raise DatasetError(f"the data tensor is {tuple(images.shape[2:])}, not {resolution}x{resolution}")
    else:
        desc = str(Path(data).resolve())
        images = load_dataset(data, resolution=resolution, channels=channels, log=log)
    if holdout:
        images, _ = split_holdout(images, holdout)
    if images.shape[0] < 1:
        raise DatasetError(f"{desc}: no training images")
    return images, desc
