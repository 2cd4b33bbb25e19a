"""DICOM (pydicom) for `genprior.io.medical`: a file or a one-series folder -> `Volume`, and a restoration back.

A folder's slices are sorted by ImagePositionPatient projected on the slice normal (from
ImageOrientationPatient) when every slice has both, else by InstanceNumber, else by file name; files that are
not DICOM images are skipped. Written results keep the patient, study, modality, orientation, positions,
spacing, slice thickness, window and rescale tags of their input slice, get a new SeriesInstanceUID (one for the
result) and SOPInstanceUIDs, ImageType DERIVED\\SECONDARY and a DerivationDescription; pixel spacing and the first
pixel's position follow an in-plane resampling.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GenpriorError
from .medical import (Volume, choose_window, denormalise, need, normalise, resampled_offsets, write_dir_atomically,
                      write_file_atomically)


def read_dicom(path: Path, *, window: str | tuple[float, float] | None = None) -> Volume:
    pydicom = need("pydicom")
    if path.is_dir():
        datasets = [ds for ds in (_read(p, pydicom, quiet=True) for p in sorted(path.iterdir()) if p.is_file())
                    if ds is not None and "PixelData" in ds]
        if not datasets:
            raise GenpriorError(f"{path}: no DICOM images in this folder")
        series = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
        if len(series) > 1:
            raise GenpriorError(f"{path}: holds {len(series)} DICOM series; give a folder with one series")
        datasets, sorted_by = _sort(datasets)
    else:
        ds = _read(path, pydicom, quiet=False)
        if "PixelData" not in ds:
            raise GenpriorError(f"{path}: this DICOM file holds no image")
        datasets, sorted_by = [ds], "one file"
    first = datasets[0]
    if int(first.get("SamplesPerPixel", 1)) != 1 or int(first.get("BitsAllocated", 16)) not in (8, 16):
        raise GenpriorError(f"{path}: only grey DICOM images of 8 or 16 bits are supported "
                            f"({first.get('PhotometricInterpretation', '?')}, {first.get('BitsAllocated', '?')} bits)")
    if len({(int(ds.Rows), int(ds.Columns)) for ds in datasets}) > 1:
        raise GenpriorError(f"{path}: the slices are not all of one size")
    slabs = []
    for ds in datasets:
        try:
            stored = ds.pixel_array
        except Exception as exc:  # noqa: BLE001 - pydicom raises several kinds for undecodable pixel data
            raise GenpriorError(f"{path}: cannot decode the pixel data of {getattr(ds, 'filename', path)} ({exc}); "
                                "compressed DICOM may need pylibjpeg or gdcm") from None
        stored = stored[None] if stored.ndim == 2 else stored
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        slabs.append(stored.astype(np.float64) * slope + intercept)
        del ds.PixelData  # the templates keep every tag but not a second copy of the pixels
    units = np.concatenate(slabs).astype(np.float32)
    (lo, hi), rule = choose_window(units, window, _file_window(first))
    return Volume(values=normalise(units, (lo, hi)), units=units, window=(lo, hi), rule=rule,
                  spacing=_spacing(datasets, units.shape[0]), format="dicom", source=path,
                  meta={"datasets": datasets, "single_file": not path.is_dir(), "sorted_by": sorted_by})


def write_dicom(volume: Volume, values: np.ndarray, target: Path, *, description: str, overwrite: bool) -> Path:
    """One file (the input was a file) or a folder of one file per slice (the input was a series folder)."""
    pydicom = need("pydicom")
    old, new = volume.values.shape, values.shape
    if new[0] != old[0]:
        raise GenpriorError(f"the restored volume has {new[0]} slices and the DICOM input {old[0]}; restore a "
                            "DICOM volume slice by slice along axis 0")
    units = denormalise(volume, values)
    series_uid = pydicom.uid.generate_uid()
    scale, offset = resampled_offsets(old[1:], new[1:])
    datasets = volume.meta["datasets"]

    def build(template: Any, slab: np.ndarray, number: int) -> Any:
        ds = copy.deepcopy(template)
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        bits, signed = int(ds.BitsStored), int(ds.PixelRepresentation) == 1
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
        dtype = np.dtype(f"{'i' if signed else 'u'}{int(ds.BitsAllocated) // 8}")
        stored = np.clip(np.round((slab - intercept) / slope), lo, hi).astype(dtype)
        ds.set_pixel_data(stored[0] if stored.shape[0] == 1 else stored, str(ds.PhotometricInterpretation), bits)
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = number
        ds.SeriesDescription = f"{ds.get('SeriesDescription', '')} ({description})".strip()
        ds.ImageType = ["DERIVED", "SECONDARY", *list(template.get("ImageType", []))[2:]]
        ds.DerivationDescription = description
        for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            if keyword in ds:
                del ds[keyword]
        if tuple(new[1:]) != tuple(old[1:]):
            _resample_geometry(ds, scale, offset)
        return ds

    if volume.meta["single_file"]:
        ds = build(datasets[0], units, int(datasets[0].get("InstanceNumber", 1) or 1))
        return write_file_atomically(target, lambda p: ds.save_as(p, enforce_file_format=True), overwrite=overwrite)

    def write_series(folder: Path) -> None:
        for i, template in enumerate(datasets):
            build(template, units[i : i + 1], i + 1).save_as(folder / f"slice_{i + 1:04d}.dcm",
                                                             enforce_file_format=True)

    return write_dir_atomically(target, write_series, overwrite=overwrite)


def _read(path: Path, pydicom: Any, *, quiet: bool) -> Any:
    try:
        return pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError, KeyError) as exc:
        if quiet:
            return None
        raise GenpriorError(f"{path}: not a readable DICOM file ({exc})") from None


def _sort(datasets: list[Any]) -> tuple[list[Any], str]:
    if all("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in datasets):
        iop = np.asarray(datasets[0].ImageOrientationPatient, dtype=np.float64)
        normal = np.cross(iop[:3], iop[3:])
        keys = [float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=np.float64), normal)) for ds in datasets]
        return [datasets[i] for i in np.argsort(keys, kind="stable")], "ImagePositionPatient"
    if all("InstanceNumber" in ds for ds in datasets):
        return sorted(datasets, key=lambda ds: int(ds.InstanceNumber)), "InstanceNumber"
    return datasets, "file name"


def _spacing(datasets: list[Any], slices: int) -> tuple[float, float, float]:
    """(between slices, between rows, between columns) in mm."""
    first = datasets[0]
    rows, cols = (float(v) for v in first.get("PixelSpacing", [1.0, 1.0]))
    between = 0.0
    if len(datasets) > 1 and all("ImagePositionPatient" in ds for ds in datasets):
        positions = np.asarray([ds.ImagePositionPatient for ds in datasets], dtype=np.float64)
        between = float(np.median(np.linalg.norm(np.diff(positions, axis=0), axis=1)))
    if between <= 0:
        between = float(first.get("SpacingBetweenSlices", 0) or first.get("SliceThickness", 0) or 1.0)
    return between, rows, cols


def _file_window(ds: Any) -> tuple[float, float] | None:
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is None or width is None:
        return None
    from pydicom.multival import MultiValue

    def first(value: Any) -> float:  # a multi-valued window lists several; the first is the default one
        return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)

    return first(centre), first(width)


def _resample_geometry(ds: Any, scale: np.ndarray, offset: np.ndarray) -> None:
    """PixelSpacing and the first pixel's ImagePositionPatient of an in-plane resampled slice."""
    if "PixelSpacing" in ds:
        row_sp, col_sp = (float(v) for v in ds.PixelSpacing)
        if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
            iop = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
            ipp = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
            ipp = ipp + iop[:3] * col_sp * offset[1] + iop[3:] * row_sp * offset[0]  # along a row, down a column
            ds.ImagePositionPatient = [round(float(v), 6) for v in ipp]
        ds.PixelSpacing = [round(row_sp * float(scale[0]), 6), round(col_sp * float(scale[1]), 6)]
