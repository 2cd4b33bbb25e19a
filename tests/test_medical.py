"""DICOM and NIfTI volumes: files made here with pydicom's and nibabel's writers, read, restored, written back."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
import torch.nn.functional as F
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from genprior.errors import GenpriorError
from genprior.io import medical
from genprior.io.medical import from_slices, read_volume, to_slices, write_volume

STUDY, SERIES = generate_uid(), generate_uid()


def ct_slice(pixels: np.ndarray, *, z: float, instance: int, series: str = SERIES, bits: int = 12,
             slope: float = 1.0, intercept: float = -1024.0, window: tuple[float, float] | None = (40, 400)) -> Dataset:
    """A CT image dataset as a scanner writes one (grey, 12 of 16 bits, Hounsfield rescale, a window)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = CTImageStorage, ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.Modality = CTImageStorage, "CT"
    ds.PatientName, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "Test^Phantom", "P001", STUDY, series
    ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = 3, "abdomen", instance
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [-50.0, -60.0, z], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [0.7, 0.8], 2.5
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.set_pixel_data(pixels, "MONOCHROME2", bits)  # also sets the SOP Instance UIDs
    return ds


def ct_series(folder: Path, stored: np.ndarray, **kw) -> None:
    """One file per slice; file names and InstanceNumbers deliberately out of the spatial order."""
    folder.mkdir()
    names = [f"{c}.dcm" for c in "dbcaefgh"[: len(stored)]]
    for k, name in enumerate(names):
        ct_slice(stored[k], z=10.0 + 2.5 * k, instance=len(stored) - k, **kw).save_as(folder / name,
                                                                                     enforce_file_format=True)


@pytest.fixture()
def stored() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4096, size=(4, 6, 5)).astype(np.uint16)


def test_dicom_series_is_sorted_by_position_and_windowed_by_the_file(tmp_path, stored):
    ct_series(tmp_path / "ser", stored)
    vol = read_volume(tmp_path / "ser")
    assert vol.meta["sorted_by"] == "ImagePositionPatient"
    np.testing.assert_array_equal(vol.units, stored.astype(np.float32) - 1024)
    assert vol.spacing == (2.5, 0.7, 0.8) and vol.window == (-160.0, 240.0)
    assert vol.rule == "the file's window (centre 40, width 400)"
    np.testing.assert_allclose(vol.values, np.clip((stored - 1024.0 + 160) / 400, 0, 1), atol=1e-6)
    assert vol.describe().endswith("dicom volume 4x6x5 (spacing 2.5, 0.7, 0.8 mm), window [-160, 240] from "
                                   "the file's window (centre 40, width 400)")


def test_dicom_series_round_trips_exactly_with_the_tags_a_user_expects(tmp_path, stored):
    ct_series(tmp_path / "ser", stored)
    vol = read_volume(tmp_path / "ser")
    out = write_volume(vol, vol.values, tmp_path / "res")  # identity: clipped voxels keep their input value
    assert out == tmp_path / "res" / "restored_dicom"
    files = sorted(out.iterdir())
    assert [p.name for p in files] == ["slice_0001.dcm", "slice_0002.dcm", "slice_0003.dcm", "slice_0004.dcm"]
    back = [pydicom.dcmread(p) for p in files]
    np.testing.assert_array_equal(np.stack([d.pixel_array for d in back]), stored)
    originals = sorted((pydicom.dcmread(p) for p in (tmp_path / "ser").iterdir()),
                       key=lambda d: float(d.ImagePositionPatient[2]))
    assert len({d.SeriesInstanceUID for d in back}) == 1 and back[0].SeriesInstanceUID != SERIES
    assert len({d.SOPInstanceUID for d in back} | {d.SOPInstanceUID for d in originals}) == 8
    for d, o in zip(back, originals):
        assert (d.PatientID, d.PatientName, d.StudyInstanceUID, d.Modality) == ("P001", "Test^Phantom", STUDY, "CT")
        assert d.ImagePositionPatient == o.ImagePositionPatient and d.ImageOrientationPatient == [1, 0, 0, 0, 1, 0]
        assert (d.PixelSpacing, d.SliceThickness, d.BitsStored) == ([0.7, 0.8], 2.5, 12)
        assert (d.RescaleSlope, d.RescaleIntercept, d.WindowCenter, d.WindowWidth) == (1, -1024, 40, 400)
        assert list(d.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert d.SeriesDescription == "abdomen (genprior restoration)"
        assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
    again = read_volume(out)
    np.testing.assert_array_equal(again.units, vol.units)
    assert again.spacing == vol.spacing


def test_dicom_restoration_maps_back_through_the_window(tmp_path, stored):
    ct_series(tmp_path / "ser", stored)
    vol = read_volume(tmp_path / "ser")
    restored = np.full(vol.values.shape, 0.25, dtype=np.float32)
    out = write_volume(vol, restored, tmp_path / "res")
    back = np.stack([pydicom.dcmread(p).pixel_array for p in sorted(out.iterdir())]).astype(np.float64) - 1024
    np.testing.assert_array_equal(back, np.full(vol.values.shape, -160 + 0.25 * 400))


def test_single_16bit_signed_dicom_with_slope_and_percentile_window(tmp_path):
    stored = np.random.default_rng(1).integers(-32768, 32768, size=(3, 8, 8)).astype(np.int16)  # multi-frame
    ds = ct_slice(stored, z=0.0, instance=1, bits=16, slope=2.0, intercept=-100.0, window=None)
    ds.save_as(tmp_path / "one.dcm", enforce_file_format=True)
    vol = read_volume(tmp_path / "one.dcm")
    np.testing.assert_array_equal(vol.units, stored * 2.0 - 100)
    lo, hi = np.percentile(stored * 2.0 - 100, [0.5, 99.5])
    assert vol.window == pytest.approx((lo, hi), abs=1e-2)
    assert vol.rule == "the volume's 0.5 and 99.5 percentiles"
    out = write_volume(vol, vol.values, tmp_path / "res")
    assert out == tmp_path / "res" / "restored.dcm"
    back = pydicom.dcmread(out)
    assert back.pixel_array.dtype == np.int16 and (back.BitsStored, back.PixelRepresentation) == (16, 1)
    np.testing.assert_array_equal(back.pixel_array, stored)
    with pytest.raises(FileExistsError, match="restored.dcm exists; refusing to overwrite it"):
        write_volume(vol, vol.values, tmp_path / "res")


def test_16bit_dicom_with_minmax_window_round_trips_through_values(tmp_path):
    stored = np.random.default_rng(2).integers(0, 65536, size=(2, 5, 7)).astype(np.uint16)
    stored[0, 0, 0], stored[1, 0, 0] = 0, 65535
    ct_series(tmp_path / "ser", stored, bits=16, intercept=0.0, window=(1000, 10))
    vol = read_volume(tmp_path / "ser", window="minmax")
    assert vol.window == (0.0, 65535.0) and vol.rule == "the volume's minimum and maximum"
    out = write_volume(vol, vol.values, tmp_path / "res")  # nothing clipped: exact through float32 [0, 1]
    np.testing.assert_array_equal(np.stack([pydicom.dcmread(p).pixel_array for p in sorted(out.iterdir())]), stored)


def test_dicom_in_plane_super_resolution_updates_spacing_and_position(tmp_path, stored):
    ct_series(tmp_path / "ser", stored)
    vol = read_volume(tmp_path / "ser")
    up = from_slices([F.interpolate(s, scale_factor=2, mode="nearest") for s in to_slices(vol.values, 0)], 0)
    out = write_volume(vol, up, tmp_path / "res")
    d = pydicom.dcmread(out / "slice_0001.dcm")
    assert (d.Rows, d.Columns) == (12, 10)
    assert [float(v) for v in d.PixelSpacing] == [0.35, 0.4]
    assert [float(v) for v in d.ImagePositionPatient] == pytest.approx([-50 - 0.2, -60 - 0.175, 10.0])
    with pytest.raises(GenpriorError, match="the restored volume has 8 slices and the DICOM input 4"):
        write_volume(vol, np.zeros((8, 6, 5), np.float32), tmp_path / "res2")


def test_dicom_folder_errors_are_one_line(tmp_path, stored):
    ct_series(tmp_path / "ser", stored)
    ct_slice(stored[0], z=99.0, instance=9, series=generate_uid()).save_as(tmp_path / "ser" / "other.dcm",
                                                                          enforce_file_format=True)
    with pytest.raises(GenpriorError, match="ser: holds 2 DICOM series; give a folder with one series"):
        read_volume(tmp_path / "ser")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    with pytest.raises(GenpriorError, match="notes: no DICOM images in this folder"):
        read_volume(tmp_path / "notes")
    (tmp_path / "bad.dcm").write_text("not a scan")
    with pytest.raises(GenpriorError, match="bad.dcm: not a readable DICOM file"):
        read_volume(tmp_path / "bad.dcm")
    (tmp_path / "empty.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x01\x02")
    with pytest.raises(GenpriorError, match="empty.dcm: this DICOM file holds no image"):
        read_volume(tmp_path / "empty.dcm")


@pytest.fixture()
def nifti_int16(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    data = np.random.default_rng(3).integers(-1000, 3000, size=(6, 7, 5)).astype(np.int16)
    affine = np.array([[-0.8, 0, 0, 40], [0, 0.9, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1.0]])
    img = nib.Nifti1Image(data, affine)
    img.header["descrip"] = b"phantom"
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=2)
    nib.save(img, tmp_path / "scan.nii.gz")
    return tmp_path / "scan.nii.gz", data, affine


def test_nifti_round_trips_exactly_with_affine_and_header(tmp_path, nifti_int16):
    path, data, affine = nifti_int16
    vol = read_volume(path)
    assert vol.spacing == pytest.approx((0.8, 0.9, 2.5)) and vol.rule == "the volume's 0.5 and 99.5 percentiles"
    assert vol.window == pytest.approx(tuple(np.percentile(data, [0.5, 99.5])))
    out = write_volume(vol, vol.values, tmp_path / "res")
    assert out == tmp_path / "res" / "restored.nii.gz"
    back = nib.load(out)
    assert back.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(back.dataobj), data)
    np.testing.assert_allclose(back.affine, affine)
    assert (int(back.header["qform_code"]), int(back.header["sform_code"])) == (1, 2)
    assert back.header["descrip"].tobytes().rstrip(b"\0") == b"phantom"
    assert back.header.get_xyzt_units() == ("mm", "sec")


def test_nifti_float_and_uncompressed_and_resampled(tmp_path, nifti_int16):
    path, data, affine = nifti_int16
    floats = (data / 3000.0).astype(np.float32)
    nib.save(nib.Nifti1Image(floats, affine), tmp_path / "f.nii")
    vol = read_volume(tmp_path / "f.nii", window=(-0.5, 1.0))
    assert vol.rule == "the given window"
    out = write_volume(vol, vol.values, tmp_path / "res")
    assert out.name == "restored.nii"
    np.testing.assert_allclose(nib.load(out).get_fdata(), floats, atol=1e-6)
    vol = read_volume(path)
    up = from_slices([F.interpolate(s, scale_factor=2, mode="nearest") for s in to_slices(vol.values, 2)], 2)
    back = nib.load(write_volume(vol, up, tmp_path / "up"))
    assert back.shape == (12, 14, 5)
    np.testing.assert_allclose(back.header.get_zooms(), (0.4, 0.45, 2.5), rtol=1e-6)
    # the first new voxel's centre lies a quarter of an old voxel before the old first centre, in space
    np.testing.assert_allclose(back.affine @ [0, 0, 0, 1], affine @ [-0.25, -0.25, 0, 1], atol=1e-5)


def test_nifti_errors_are_one_line(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), tmp_path / "t.nii.gz")
    with pytest.raises(GenpriorError, match=r"t.nii.gz: a 4-D NIfTI image \(4, 4, 4, 3\) is not one volume"):
        read_volume(tmp_path / "t.nii.gz")
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(GenpriorError, match="bad.nii.gz: not a readable NIfTI file"):
        read_volume(tmp_path / "bad.nii.gz")
    with pytest.raises(GenpriorError, match="unknown window 'auto'; use file, percentiles, minmax or"):
        medical.choose_window(np.zeros(3), "auto")


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_and_stacking_are_inverse(axis):
    vol = np.random.default_rng(4).random((3, 4, 5), dtype=np.float32)
    slices = to_slices(vol, axis)
    assert len(slices) == vol.shape[axis]
    others = [n for i, n in enumerate(vol.shape) if i != axis]
    assert all(s.shape == (1, 1, *others) and s.dtype == torch.float32 for s in slices)
    np.testing.assert_array_equal(slices[1][0, 0].numpy(), np.take(vol, 1, axis=axis))
    np.testing.assert_array_equal(from_slices(slices, axis), vol)
    with pytest.raises(GenpriorError, match="from_slices needs"):
        from_slices([slices[0], torch.zeros(1, 1, 2, 2)], axis)


def test_is_volume_tells_scans_from_pictures(tmp_path, stored, nifti_int16):
    ct_series(tmp_path / "ser", stored)
    (tmp_path / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert medical.is_volume(nifti_int16[0]) and medical.is_volume(tmp_path / "ser")
    assert medical.is_volume(tmp_path / "ser" / "a.dcm")
    assert not medical.is_volume(tmp_path / "pic.png") and not medical.is_volume(tmp_path / "nothing")
