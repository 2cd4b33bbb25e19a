"""`genprior restore` on DICOM and NIfTI volumes: slice by slice, written back in the input's format."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_cli as run  # noqa: E402
from test_medical import ct_series  # noqa: E402  (its DICOM series maker)

import nibabel as nib  # noqa: E402  (the medical extra is part of the test extra)


def digit_volume(shared, n: int = 3) -> np.ndarray:
    import gzip

    with gzip.open(shared / "data" / "digits" / "t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return np.stack([np.pad(raw[9100 + i], 2) for i in range(n)], axis=-1).astype(np.int16) * 4  # (32, 32, n)


QUICK = ["-g", "genprior-digits32", "--steps", "3", "--extension", "none"]


def test_nifti_volume_is_denoised_slice_by_slice(tmp_path, shared):
    data = digit_volume(shared)
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    res = run("restore", path, *QUICK, "--task", "denoise", "--sigma", "0.1", "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "3 slices restored" in res.output
    out = nib.load(tmp_path / "out" / "scan.nii" / "restored.nii.gz")
    assert out.shape == data.shape and np.allclose(out.affine, affine)
    restored = np.asarray(out.dataobj, dtype=np.float64)
    assert restored.std() > 0 and np.corrcoef(restored.ravel(), data.ravel())[0, 1] > 0.5
    assert (tmp_path / "out" / "scan.nii" / "restored.png").exists()


def test_dicom_series_is_super_resolved_with_the_finer_spacing(tmp_path, shared):
    import pydicom

    lr = (digit_volume(shared)[::2, ::2].transpose(2, 0, 1) + 100).astype(np.uint16)  # (3, 16, 16)
    series = tmp_path / "series"
    ct_series(series, lr)
    res = run("restore", series, *QUICK, "--task", "superres", "--factor", "2", "--kernel", "box",
              "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "out" / "series" / "restored_dicom").iterdir())
    assert len(files) == 3
    first = pydicom.dcmread(files[0])
    original = pydicom.dcmread(sorted(series.iterdir())[0])
    assert (first.Rows, first.Columns) == (32, 32)
    assert float(first.PixelSpacing[0]) == pytest.approx(float(original.PixelSpacing[0]) / 2)
    assert first.StudyInstanceUID == original.StudyInstanceUID and first.SeriesInstanceUID != original.SeriesInstanceUID
