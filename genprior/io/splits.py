"""Which shared-data files each shipped generator was trained on and which are held out (a registry as data).

Benchmarks score on held-out files only; per-model measurements (generator weights, fusion-net training) use the
training files only. Paths are relative to the shared data folder (`genprior.paths.shared_dir`).

>>> SPLITS["genprior-faces64"].held_out
('data/faces-utk64', slice(-1000, None, None))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Split", "SPLITS", "split_files"]


@dataclass(frozen=True)
class Split:
    """A model's data: ``(folder, slice of its sorted file names)`` for training and held-out, image channels."""

    channels: int
    train: tuple[str, slice]
    held_out: tuple[str, slice]


SPLITS: dict[str, Split] = {
    "genprior-faces64": Split(3, ("data/faces-utk64", slice(0, -1000)), ("data/faces-utk64", slice(-1000, None))),
    "genprior-brain64": Split(1, ("data/brain-mri64/train", slice(None)), ("data/brain-mri64/test", slice(None))),
}


def split_files(shared: Path, model: str, part: str, n: int, offset: int = 0) -> list[Path]:
    """n files of ``part`` ("train" or "held_out") of a shipped model's data, evenly spread over the part
    (``offset`` shifts the pick, giving disjoint sets)."""
    if model not in SPLITS:
        raise KeyError(f"no data split known for {model!r} (known: {', '.join(SPLITS)})")
    folder, part_slice = getattr(SPLITS[model], part)
    files = sorted(os.listdir(Path(shared) / folder))[part_slice]
    return [Path(shared) / folder / f for f in files[offset:: max(1, len(files) // n)][:n]]
