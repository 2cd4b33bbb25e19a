"""BIGPrior fusion training data: (observation, GAN estimate, truth[, mask]) triples from folders, by file stem.

Stems match across folders by name, all-digit stems by their number (``0250.webp`` matches ``250.png``). An
optional mask folder serves in-painting: white = observed, black = hole, as ``genprior restore --mask FILE``;
items carry it as 1 on the holes (BIGPrior's M).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GenpriorError
from ..io.images import IMAGE_SUFFIXES, read_image
from .fusion import check_task_name, task_channels

__all__ = ["FusionTriples", "collate", "index_folder"]


def _stem_key(stem: str) -> str:
    return str(int(stem)) if stem.isdigit() else stem


def index_folder(folder: Path, what: str) -> dict[str, Path]:
    """Image (and .npy) files of ``folder`` by stem key; `GenpriorError` when it is missing or a stem repeats."""
    if not folder.is_dir():
        raise GenpriorError(f"the {what} folder {folder} does not exist")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES + (".npy",) or not p.is_file():
            continue
        key = _stem_key(p.stem)
        if key in found:
            raise GenpriorError(f"the {what} folder {folder} has two files for image {key!r}: "
                                f"{found[key].name} and {p.name}")
        found[key] = p
    return found


def _sort_keys(keys) -> list[str]:
    return sorted(keys, key=lambda k: (0, int(k), "") if k.isdigit() else (1, 0, k))


def _names(keys: list[str], limit: int = 8) -> str:
    keys = _sort_keys(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


class FusionTriples(torch.utils.data.Dataset):
    """(observation y, GAN estimate g, truth x[, mask]) per image, in [0, 1], from folders matched by stem.

    ``stems``: the images to use (names or numbers; default: every observation). Every selected image must
    be in every folder, otherwise `GenpriorError` names the missing files. ``truths`` may be None (testing
    without ground truth). Colorization observations are read as 1-channel grey; denoising observations may be
    float ``.npy`` arrays (H, W, 3) in [0, 1] scale (not clipped). ``crop``: a square crop size, centred
    unless ``augment``; ``augment``: random crop position and random horizontal flip (torch's global RNG).
    Items are dicts with tensors ``y`` (C_y, H, W), ``g`` (3, H, W), ``x`` (3, H, W) or None, ``mask``
    (1, H, W) or None and the ``stem``.
    """

    def __init__(self, observations: str | os.PathLike, estimates: str | os.PathLike,
                 truths: str | os.PathLike | None = None, *, task: str, masks: str | os.PathLike | None = None,
                 stems: list | range | None = None, crop: int | None = None, augment: bool = False):
        self.task = check_task_name(task)
        self.channels = task_channels(task)
        self.crop, self.augment = crop, bool(augment)
        folders = {"observation": Path(observations), "GAN estimate": Path(estimates)}
        if truths is not None:
            folders["truth"] = Path(truths)
        if masks is not None:
            folders["mask"] = Path(masks)
        index = {what: index_folder(f, what) for what, f in folders.items()}
        if stems is None:
            keys = _sort_keys(index["observation"])
            if not keys:
                raise GenpriorError(f"no images in the observation folder {folders['observation']}")
        else:
            keys = [_stem_key(str(s)) for s in stems]
            if not keys:
                raise GenpriorError("stems selects no images")
        problems = []
        for what, files in index.items():
            missing = [k for k in keys if k not in files]
            if missing:
                problems.append(f"{len(missing)} {what} file(s) missing in {folders[what]} for image(s) "
                                f"{_names(missing)}")
        if stems is None:
            for what, files in index.items():
                extra = [k for k in files if k not in set(keys)]
                if extra and what != "truth":
                    problems.append(f"{what} file(s) without an observation in {folders[what]}: {_names(extra)}")
        if problems:
            raise GenpriorError("mismatched BIGPrior triples: " + "; ".join(problems))
        self.folders = {k: str(v) for k, v in folders.items()}
        self.stems = keys
        self.files = [{what: index[what][k] for what in index} for k in keys]

    def __len__(self) -> int:
        return len(self.stems)

    def describe(self) -> dict:
        return {"task": self.task, "folders": self.folders, "stems": self.stems, "crop": self.crop,
                "augment": self.augment}

    def _read(self, path: Path, channels: int) -> torch.Tensor:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False).astype(np.float32)
            t = torch.from_numpy(arr)
            t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
            if t.shape[0] != channels:
                raise GenpriorError(f"{path}: expected {channels} channel(s), got array of shape {arr.shape}")
            return t
        return read_image(path, channels)[0]

    @staticmethod
    def _crop(t: torch.Tensor | None, box: tuple[int, int, int] | None, flip: bool) -> torch.Tensor | None:
        if t is None:
            return t
        if box is not None:
            top, left, size = box
            t = t[..., top:top + size, left:left + size]
        return t.flip(-1) if flip else t

    def __getitem__(self, i: int) -> dict[str, Any]:
        f = self.files[i]
        y = self._read(f["observation"], self.channels)
        g = self._read(f["GAN estimate"], 3)
        x = self._read(f["truth"], 3) if "truth" in f else None
        mask = (self._read(f["mask"], 1) < 0.5).float() if "mask" in f else None  # file white = observed -> 1 = hole
        sizes = {what: tuple(t.shape[-2:]) for what, t in (("observation", y), ("GAN estimate", g),
                                                               ("truth", x), ("mask", mask)) if t is not None}
        if len(set(sizes.values())) > 1:
            raise GenpriorError(f"image {self.stems[i]}: sizes differ: " +
                                ", ".join(f"{k} {v[0]}x{v[1]}" for k, v in sizes.items()))
        box, flip = None, False
        if self.crop:
            h, w = y.shape[-2:]
            if self.crop > min(h, w):
                raise GenpriorError(f"crop {self.crop} is larger than image {self.stems[i]} ({h}x{w})")
            if self.augment:
                top = int(torch.randint(0, h - self.crop + 1, ()))
                left = int(torch.randint(0, w - self.crop + 1, ()))
            else:
                top, left = (h - self.crop) // 2, (w - self.crop) // 2
            box = (top, left, self.crop)
        if self.augment:
            flip = bool(torch.rand(()) < 0.5)
        return {"y": self._crop(y, box, flip), "g": self._crop(g, box, flip), "x": self._crop(x, box, flip),
                "mask": self._crop(mask, box, flip), "stem": self.stems[i]}


def collate(items: list[dict]) -> dict[str, Any]:
    """A batch of `FusionTriples` items: stacked tensors (None where the items have none) and the stems."""
    out: dict[str, Any] = {"stem": [it["stem"] for it in items]}
    for k in ("y", "g", "x", "mask"):
        vals = [it[k] for it in items]
        out[k] = None if vals[0] is None else torch.stack(vals)
    return out
