"""DICOM and NIfTI volumes <-> [0, 1] slices, and back, with their geometry and tags (extra ``genprior[medical]``).

Reading gives a `Volume`: ``values`` float32 (D0, D1, D2) in [0, 1] plus what is needed to write a restoration
back in the input's format. Axes: a DICOM volume is (slice, row, column) in slice order; a NIfTI volume keeps
nibabel's (i, j, k) voxel order (no reorientation). ``spacing`` is in mm along those three axes.

Intensity rule (stated in ``Volume.rule``): intensities are first put in the file's units, DICOM's stored
values through RescaleSlope / RescaleIntercept (e.g. Hounsfield units), NIfTI's through scl_slope / scl_inter.
Then a window [lo, hi] is mapped linearly to [0, 1], and values outside it are clipped:

* DICOM: the file's first WindowCenter / WindowWidth (lo, hi = C -+ W/2) when present, else the 0.5 and 99.5
  percentiles of the volume;
* NIfTI: the 0.5 and 99.5 percentiles of the volume;
* ``window="minmax"`` takes the volume's range (nothing clipped), ``window=(lo, hi)`` a given one.

Writing maps [0, 1] back to lo + x (hi - lo); where the input lay outside the window and the restoration sits
at that edge of it, the input's value is kept (the restoration could not see beyond the window), and values
are rounded to the stored integer type. `to_slices` / `from_slices` cut a volume into (1, 1, H, W) slices
along an axis and stack them back; `write_volume` writes ``restored.dcm`` (or a series folder) or
``restored.nii.gz`` beside the results, resampled geometry included when slices changed size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import GenpriorError
from .atomic import atomic_dir, atomic_path

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_EXTRA = "pip install 'genprior[medical]'"
_PERCENTILES = (0.5, 99.5)


@dataclass
class Volume:
    """A 3-D scan normalised to [0, 1]; ``window`` (file units) maps to 0 and 1 by the rule in ``rule``."""

    values: np.ndarray  # float32 (D0, D1, D2) in [0, 1]
    units: np.ndarray  # float32 (D0, D1, D2): the input in file units (for write-back outside the window)
    window: tuple[float, float]
    rule: str
    spacing: tuple[float, float, float]
    format: str  # "dicom" or "nifti"
    source: Path
    meta: dict[str, Any] = field(default_factory=dict, repr=False)  # datasets / nibabel image; see readers

    def describe(self) -> str:
        """One line for a notice: what was read and how it was normalised."""
        shape = "x".join(str(n) for n in self.values.shape)
        return (f"{self.source}: {self.format} volume {shape} (spacing {', '.join(f'{s:g}' for s in self.spacing)}"
                f" mm), window [{self.window[0]:g}, {self.window[1]:g}] from {self.rule}")


def is_volume(path: str | os.PathLike) -> bool:
    """True for a NIfTI file, a DICOM file or a folder holding DICOM files."""
    path = Path(path)
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        return True
    if path.is_dir():
        return any(_is_dicom(p) for p in sorted(path.iterdir())[:64] if p.is_file())
    return path.is_file() and _is_dicom(path)


def read_volume(path: str | os.PathLike, *, window: str | tuple[float, float] | None = None) -> Volume:
    """A NIfTI file (.nii, .nii.gz), a DICOM file, or a folder holding one DICOM series -> `Volume`."""
    path = Path(path)
    if not path.exists():
        raise GenpriorError(f"{path}: no such file or folder")
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        return read_nifti(path, window=window)
    return read_dicom(path, window=window)


def choose_window(units: np.ndarray, window: str | tuple[float, float] | None,
                  file_window: tuple[float, float] | None = None) -> tuple[tuple[float, float], str]:
    """(lo, hi) and its rule in words, per the module's rule; lo < hi always."""
    if isinstance(window, (tuple, list)):
        lo, hi, rule = float(window[0]), float(window[1]), "the given window"
    elif window == "minmax":
        lo, hi, rule = float(units.min()), float(units.max()), "the volume's minimum and maximum"
    elif window in (None, "file") and file_window is not None:
        c, w = file_window
        lo, hi, rule = c - w / 2, c + w / 2, f"the file's window (centre {c:g}, width {w:g})"
    elif window in (None, "file", "percentiles"):
        lo, hi = (float(v) for v in np.percentile(units, _PERCENTILES))
        rule = f"the volume's {_PERCENTILES[0]:g} and {_PERCENTILES[1]:g} percentiles"
    else:
        raise GenpriorError(f"unknown window {window!r}; use file, percentiles, minmax or (lo, hi)")
    if not hi > lo:
        hi = lo + 1.0
    return (lo, hi), rule


def normalise(units: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """File units -> float32 in [0, 1]: (u - lo) / (hi - lo), clipped."""
    lo, hi = window
    return np.clip((units - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def denormalise(volume: Volume, values: np.ndarray) -> np.ndarray:
    """[0, 1] -> file units: lo + x (hi - lo); where the input lay beyond the window and x sits at that edge (and
    the grid is the input's), the input's value is kept."""
    lo, hi = volume.window
    x = np.asarray(values, dtype=np.float64)
    units = lo + np.clip(x, 0.0, 1.0) * (hi - lo)
    if x.shape == volume.units.shape:
        keep = ((volume.units < lo) & (x <= 0.0)) | ((volume.units > hi) & (x >= 1.0))
        units[keep] = volume.units[keep]
    return units


def to_slices(values: np.ndarray, axis: int = 0) -> list[torch.Tensor]:
    """(D0, D1, D2) -> D_axis tensors (1, 1, H, W), H and W the other two axes in order."""
    if values.ndim != 3 or axis not in (0, 1, 2):
        raise GenpriorError(f"slicing needs a 3-D volume and an axis 0, 1 or 2, not {values.ndim}-D and {axis}")
    moved = np.moveaxis(np.asarray(values, dtype=np.float32), axis, 0)
    return [torch.from_numpy(s.copy())[None, None] for s in moved]


def from_slices(slices: Sequence[torch.Tensor], axis: int = 0) -> np.ndarray:
    """Inverse of `to_slices`: (1, 1, H, W) tensors (all one size) -> float32 volume, slices along ``axis``."""
    if not slices or any(s.shape != slices[0].shape or s.ndim != 4 or s.shape[:2] != (1, 1) for s in slices):
        raise GenpriorError("from_slices needs (1, 1, H, W) slices, all of one size")
    stacked = np.stack([s[0, 0].detach().float().cpu().numpy() for s in slices])
    return np.moveaxis(stacked, 0, axis)


def write_volume(volume: Volume, values: np.ndarray, directory: str | os.PathLike, *, stem: str = "restored",
                 description: str = "genprior restoration", overwrite: bool = False) -> Path:
    """Write ``values`` ([0, 1], the input's shape or resampled in-plane) in the input's format into ``directory``.

    NIfTI -> ``<stem>.nii.gz`` (or ``.nii`` for a .nii input); a DICOM file -> ``<stem>.dcm``; a DICOM series
    folder -> ``<stem>_dicom/`` with one file per slice. Written atomically; refuses to overwrite by default.
    """
    directory = Path(directory)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 3:
        raise GenpriorError(f"a restored volume must be 3-D, not {values.shape}")
    if volume.format == "nifti":
        from .medical_nifti import write_nifti

        suffix = ".nii" if volume.source.name.lower().endswith(".nii") else ".nii.gz"
        return write_nifti(volume, values, directory / f"{stem}{suffix}", overwrite=overwrite)
    from .medical_dicom import write_dicom

    target = directory / (f"{stem}.dcm" if volume.meta["single_file"] else f"{stem}_dicom")
    return write_dicom(volume, values, target, description=description, overwrite=overwrite)


def read_dicom(path: str | os.PathLike, *, window: str | tuple[float, float] | None = None) -> Volume:
    from .medical_dicom import read_dicom as read

    return read(Path(path), window=window)


def read_nifti(path: str | os.PathLike, *, window: str | tuple[float, float] | None = None) -> Volume:
    from .medical_nifti import read_nifti as read

    return read(Path(path), window=window)


def resampled_offsets(old: Sequence[int], new: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per axis, (scale, offset) with new voxel i at old index i * scale + offset (voxel centres, edges aligned)."""
    scale = np.asarray(old, dtype=np.float64) / np.asarray(new, dtype=np.float64)
    return scale, 0.5 * scale - 0.5


def need(module: str) -> Any:
    """Import pydicom or nibabel, or say which extra to install."""
    try:
        return __import__(module)
    except ImportError:
        raise GenpriorError(f"reading medical images needs {module} ({_EXTRA})") from None


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or path.suffix.lower() == ".dcm"


def write_dir_atomically(target: Path, write: Any, *, overwrite: bool) -> Path:
    """Call ``write(tmp_dir)`` and rename the folder to ``target`` (`genprior.io.atomic.atomic_dir`)."""
    return atomic_dir(target, write, overwrite=overwrite)


def write_file_atomically(target: Path, write: Any, *, overwrite: bool, suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` (a path ending in ``suffix``, for writers that look at it), then rename."""
    with atomic_path(target, overwrite=overwrite) as tmp:
        if not suffix:
            write(tmp)
            return target
        named = tmp.with_name(tmp.name + suffix)
        try:
            write(named)
            os.replace(named, tmp)
        finally:
            named.unlink(missing_ok=True)
    return target
