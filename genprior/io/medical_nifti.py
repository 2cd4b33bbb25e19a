"""NIfTI (nibabel) for `genprior.io.medical`: .nii / .nii.gz -> `Volume`, and a restoration back.

The written image keeps the input's header (orientation codes, units, description fields) and affine, its
on-disk data type, and its scaling when it had none (integer data written as integers, exactly); an input with
scl_slope / scl_inter is written as nibabel scales it into the same type. An in-plane (or any-axis) resampling
updates the affine so that voxel centres stay where they were in space.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..errors import GenpriorError
from .medical import Volume, choose_window, denormalise, need, normalise, resampled_offsets, write_file_atomically


def read_nifti(path: Path, *, window: str | tuple[float, float] | None = None) -> Volume:
    nib = need("nibabel")
    try:
        img = nib.load(str(path))
        units = np.asarray(img.get_fdata(dtype=np.float64), dtype=np.float32)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise GenpriorError(f"{path}: not a readable NIfTI file ({exc})") from None
    if units.ndim == 2:
        units = units[..., None]
    elif units.ndim == 4 and units.shape[3] == 1:
        units = units[..., 0]
    if units.ndim != 3:
        raise GenpriorError(f"{path}: a {units.ndim}-D NIfTI image {units.shape} is not one volume; give a 3-D one")
    if not np.isfinite(units).all():
        raise GenpriorError(f"{path}: the volume holds NaN or infinite values")
    (lo, hi), rule = choose_window(units, window)
    slope, inter = img.header.get_slope_inter()
    return Volume(values=normalise(units, (lo, hi)), units=units, window=(lo, hi), rule=rule,
                  spacing=tuple(float(z) for z in img.header.get_zooms()[:3]), format="nifti", source=path,
                  meta={"header": img.header.copy(), "affine": img.affine.copy(), "class": type(img),
                        "dtype": img.get_data_dtype(), "scaled": slope not in (None, 1.0) or inter not in (None, 0.0)})


def write_nifti(volume: Volume, values: np.ndarray, target: Path, *, overwrite: bool) -> Path:
    nib = need("nibabel")
    meta = volume.meta
    units = denormalise(volume, values)
    affine = meta["affine"]
    if values.shape != volume.values.shape:
        scale, offset = resampled_offsets(volume.values.shape, values.shape)
        step = np.eye(4)
        step[:3, :3], step[:3, 3] = np.diag(scale), offset
        affine = affine @ step
    dtype = np.dtype(meta["dtype"])
    if dtype.kind in "iu" and not meta["scaled"]:
        info = np.iinfo(dtype)
        data = np.clip(np.round(units), info.min, info.max).astype(dtype)
    else:
        data = units.astype(np.float32 if dtype.kind in "iu" else dtype)
    img = meta["class"](data, affine, meta["header"].copy())
    img.set_data_dtype(dtype)
    suffix = ".nii.gz" if target.name.lower().endswith(".gz") else ".nii"
    return write_file_atomically(target, lambda p: nib.save(img, str(p)), overwrite=overwrite, suffix=suffix)
