"""Reading DICOM series: exact HU, world geometry, slice order, multi-frame, mosaic, codecs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from conftest import oblique_affine, run_cli, write_ct_series
from dicom_factory import nibabel_mosaic, write_enhanced_mr, write_stripped_enhanced_mr
from dipmed.io import read_volume
from dipmed.phantom import ct_phantom
from dipmed.volume import Volume

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def test_ct_series_converts_to_exact_hu_and_the_same_world_geometry(
    tmp_path, capsys, ct_volume, ct_series
):
    reference = nib.Nifti1Image(ct_volume.array, ct_volume.affine)  # "a NIfTI of the same data"
    stored = pydicom.dcmread(next(ct_series.iterdir()))
    assert float(stored.RescaleIntercept) == -1024.0
    code, _, err = run_cli(capsys, "convert", ct_series, tmp_path / "ct.nii.gz")
    assert code == 0, err
    converted = nib.load(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(converted.get_fdata(), reference.get_fdata())
    np.testing.assert_allclose(converted.affine, reference.affine, atol=1e-3)


def test_voxel_world_positions_match_the_dicom_tags(ct_series):
    """Independent of our affine code: pixel (r, c) of a file lies at IPP + c*dc*row + r*dr*col."""
    volume = read_volume(ct_series)
    for path in sorted(ct_series.iterdir())[::5]:
        ds = pydicom.dcmread(path)
        iop = np.array(ds.ImageOrientationPatient, float)
        d_row, d_col = (float(v) for v in ds.PixelSpacing)
        r, c = 3, 11
        origin = np.array(ds.ImagePositionPatient, float)
        world_lps = origin + c * d_col * iop[:3] + r * d_row * iop[3:]
        index = np.linalg.solve(volume.affine, LPS @ np.append(world_lps, 1.0))[:3]
        i, j, k = np.round(index).astype(int)
        assert np.allclose(index, [i, j, k], atol=1e-3)
        hu = ds.pixel_array[r, c] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert volume.array[i, j, k] == hu


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix not installed (apt)")
def test_geometry_agrees_with_dcm2niix(tmp_path, ct_series):
    subprocess.run(
        ["dcm2niix", "-z", "y", "-f", "ref", "-o", str(tmp_path), str(ct_series)],
        check=True,
        capture_output=True,
    )
    theirs = nib.as_closest_canonical(nib.load(tmp_path / "ref.nii.gz"))
    volume = read_volume(ct_series)
    ours = nib.as_closest_canonical(nib.Nifti1Image(volume.array, volume.affine))
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())


def test_file_names_and_order_do_not_matter(tmp_path, ct_volume, ct_series):
    shuffled = tmp_path / "shuffled" / "nested"
    shuffled.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for index, path in enumerate(rng.permutation(sorted(ct_series.iterdir()))):
        shutil.copy(path, shuffled / f"x{index:03d}")
    volume = read_volume(tmp_path / "shuffled")
    np.testing.assert_array_equal(volume.array, ct_volume.array)
    np.testing.assert_allclose(volume.affine, ct_volume.affine, atol=1e-4)


def test_rescale_slope_and_per_slice_intercepts_apply(tmp_path):
    hu = ct_phantom((16, 16, 16))
    folder = tmp_path / "s"
    write_ct_series(folder, Volume(hu, np.eye(4)), intercept=-1024.0)
    for k, path in enumerate(sorted(folder.iterdir())):  # re-store each slice differently
        ds = pydicom.dcmread(path)
        slope, intercept = 0.5, -2048.0 + k
        ds.PixelData = np.round((hu[:, :, k].T - intercept) / slope).astype("<i2").tobytes()
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.save_as(path)
    np.testing.assert_array_equal(read_volume(folder).array, hu)


def test_compressed_rle_series_decodes(tmp_path, ct_volume, ct_series):
    for path in ct_series.iterdir():
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path)
    np.testing.assert_array_equal(read_volume(ct_series).array, ct_volume.array)


def test_jpeg2000_decodes_where_the_codec_is_installed(tmp_path):
    pytest.importorskip("openjpeg", reason="pylibjpeg-openjpeg (dipmed[codecs]) not installed")
    volume = Volume(ct_phantom((64, 64, 3)), np.eye(4))  # the encoder needs >= 64x64 tiles
    write_ct_series(tmp_path / "j2k", volume)
    for path in (tmp_path / "j2k").iterdir():
        ds = pydicom.dcmread(path)
        ds.compress(JPEG2000Lossless)
        ds.save_as(path)
    np.testing.assert_array_equal(read_volume(tmp_path / "j2k").array, volume.array)


def test_missing_decoder_names_the_package(tmp_path, capsys, ct_series):
    for path in ct_series.iterdir():  # JPEG-LS needs pyjpegls, which dipmed does not install
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLSLossless
        ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\x00\x00\xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds.save_as(path, enforce_file_format=True)
    code, _, err = run_cli(capsys, "convert", ct_series, tmp_path / "o.nii.gz")
    assert code == 2
    assert "JPEG-LS" in err and "pip install pyjpegls" in err
    assert not (tmp_path / "o.nii.gz").exists()


def test_enhanced_multiframe_reads_like_the_classic_series(tmp_path, ct_volume):
    path = write_enhanced_mr(tmp_path / "enhanced.dcm", ct_volume)
    volume = read_volume(path)
    np.testing.assert_allclose(volume.array, ct_volume.array, atol=1e-3)
    np.testing.assert_allclose(volume.affine, ct_volume.affine, atol=1e-4)
    assert volume.meta.modality == "MR"


def test_enhanced_frames_lie_where_their_plane_positions_say(tmp_path, ct_volume):
    """Independent of our affine code: pixel (r, c) of each frame lies at its
    PlanePositionSequence IPP + c*dc*row + r*dr*col, and holds that voxel's value."""
    path = write_enhanced_mr(tmp_path / "enhanced.dcm", ct_volume, seed=5)
    volume = read_volume(path)
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    d_row, d_col = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    r, c = 4, 13
    for frame, pixels in zip(ds.PerFrameFunctionalGroupsSequence, ds.pixel_array, strict=True):
        origin = np.array(frame.PlanePositionSequence[0].ImagePositionPatient, float)
        world_lps = origin + c * d_col * iop[:3] + r * d_row * iop[3:]
        index = np.linalg.solve(volume.affine, LPS @ np.append(world_lps, 1.0))[:3]
        i, j, k = np.round(index).astype(int)
        assert np.allclose(index, [i, j, k], atol=1e-3)
        assert volume.array[i, j, k] == pixels[r, c] * 0.25 - 1100.0
    assert volume.meta.warnings == ()


def _frames(count: int = 10) -> np.ndarray:
    return np.random.default_rng(4).integers(0, 4000, (count, 64, 64), dtype=np.uint16)


def test_stripped_multiframe_reads_under_a_stated_assumption(tmp_path, capsys):
    """No functional groups: 10 frames of 64x64 with top-level PixelSpacing (rows 0.9,
    columns 0.8) and SpacingBetweenSlices 3 (SliceThickness 2.5) read as one stack."""
    frames = _frames()
    path = write_stripped_enhanced_mr(tmp_path / "stripped.dcm", frames)
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.array, frames.transpose(2, 1, 0))
    assert volume.spacing == pytest.approx((0.8, 0.9, 3.0))
    np.testing.assert_allclose(volume.affine, LPS @ np.diag([0.8, 0.9, 3.0, 1.0]))
    code, out, err = run_cli(capsys, "info", path, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["shape"] == [64, 64, 10] and info["spacing"] == pytest.approx([0.8, 0.9, 3.0])
    assert len(info["warnings"]) == 2
    assert "ImageOrientationPatient" in info["warnings"][0]
    assert "3 mm apart (SpacingBetweenSlices)" in info["warnings"][1]
    code, out, _ = run_cli(capsys, "info", path)
    assert code == 0 and out.count("  warning  ") == 2
    assert "PID-999" not in out and "DOE" not in out


def test_stripped_multiframe_falls_back_to_slice_thickness(tmp_path):
    path = write_stripped_enhanced_mr(tmp_path / "s.dcm", _frames(), between=None)
    volume = read_volume(path)
    assert volume.spacing == pytest.approx((0.8, 0.9, 2.5))
    assert "(SliceThickness; no SpacingBetweenSlices" in volume.meta.warnings[1]


def test_stripped_multiframe_warning_reaches_the_nifti_sidecar(tmp_path, capsys):
    path = write_stripped_enhanced_mr(tmp_path / "s.dcm", _frames())
    code, _, err = run_cli(capsys, "convert", path, tmp_path / "s.nii.gz")
    assert code == 0
    assert err.count("dipmed convert: warning: ") == 2
    sidecar = json.loads((tmp_path / "s.json").read_text())
    assert sidecar["Warnings"] == list(read_volume(path).meta.warnings)


def test_multivolume_enhanced_file_lists_and_reads_each_volume(tmp_path, capsys, ct_volume):
    path = write_enhanced_mr(tmp_path / "dwi.dcm", ct_volume, b_values=(0.0, 1000.0))
    code, out, err = run_cli(capsys, "info", path, "--json")
    assert code == 0, err
    volumes = json.loads(out)["volumes"]
    assert [(v["index"], v["b_value"], v["frames"]) for v in volumes] == [(0, 0, 16), (1, 1000, 16)]
    second = read_volume(path, volume=1)
    np.testing.assert_allclose(second.array, ct_volume.array + 0.25, atol=1e-3)
    np.testing.assert_allclose(second.affine, ct_volume.affine, atol=1e-4)
    code, _, err = run_cli(capsys, "convert", path, tmp_path / "o.nii.gz")
    assert code == 2 and "multi-frame file of 2 volumes; choose one with --volume 0..1" in err


def _mosaic_series(folder: Path) -> Path:
    """Two real mosaic files of one series (SeriesInstanceUID): b = 0 and b = 1000."""
    for name in ("siemens_dwi_0", "siemens_dwi_1000"):
        if nibabel_mosaic(name, folder / f"{name}.dcm") is None:
            pytest.skip("nibabel's mosaic test files are not installed")
    return folder


@pytest.mark.filterwarnings("ignore:The DICOM readers are highly experimental")
def test_info_lists_the_volumes_of_a_mosaic_series(tmp_path, capsys):
    folder = _mosaic_series(tmp_path / "dwi")
    code, out, err = run_cli(capsys, "info", folder, "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert len(listing["series"]) == 1 and listing["series"][0]["files"] == 2
    volumes = listing["volumes"]
    assert [v["index"] for v in volumes] == [0, 1]
    assert [v["b_value"] for v in volumes] == [0, 1000]
    assert [v["acquisition_number"] for v in volumes] == [1, 2]
    code, out, _ = run_cli(capsys, "info", folder)
    assert code == 0 and "2 volumes" in out
    assert "volume    0  b_value=0" in out and "volume    1  b_value=1000" in out
    code, out, _ = run_cli(capsys, "info", folder, "--volume", "1", "--json")
    assert code == 0 and json.loads(out)["shape"] == [128, 128, 48]
    code, _, err = run_cli(capsys, "convert", folder, tmp_path / "o.nii.gz")
    assert code == 2 and "is a mosaic series of 2 volumes; choose one with --volume 0..1" in err


@pytest.mark.filterwarnings("ignore:The DICOM readers are highly experimental")
def test_siemens_mosaic_unpacks_with_its_geometry(tmp_path):
    from nibabel.nicom import dicomwrappers

    path = nibabel_mosaic("siemens_dwi_0", tmp_path / "mosaic.dcm")
    if path is None:
        pytest.skip("nibabel's mosaic test file is not installed")
    volume = read_volume(path)
    wrapper = dicomwrappers.wrapper_from_file(str(path))
    assert volume.shape == tuple(np.array(wrapper.image_shape)[[1, 0, 2]])
    # the same voxel (row 5, column 9, slice 3) sits at the same world position in both
    data = wrapper.get_data()
    world = LPS @ wrapper.affine @ np.array([5, 9, 3, 1.0])
    np.testing.assert_allclose(volume.affine @ np.array([9, 5, 3, 1.0]), world, atol=1e-4)
    assert volume.array[9, 5, 3] == pytest.approx(data[5, 9, 3])


def test_info_json_describes_the_series(capsys, ct_series):
    code, out, _ = run_cli(capsys, "info", ct_series, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["shape"] == [19, 17, 16] and info["modality"] == "CT"
    assert info["spacing"] == pytest.approx([0.8, 0.7, 2.5], abs=1e-5)
    assert np.allclose(info["affine"], oblique_affine(), atol=1e-5)
    assert len(info["orientation"]) == 3
