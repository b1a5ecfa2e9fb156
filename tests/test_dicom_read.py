"""Reading DICOM series: exact HU, world geometry, slice order, multi-frame, mosaic, codecs."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless

from conftest import oblique_affine, run_cli, write_ct_series
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
    from dicom_factory import write_enhanced_mr

    path = write_enhanced_mr(tmp_path / "enhanced.dcm", ct_volume)
    volume = read_volume(path)
    np.testing.assert_allclose(volume.array, ct_volume.array, atol=1e-3)
    np.testing.assert_allclose(volume.affine, ct_volume.affine, atol=1e-4)
    assert volume.meta.modality == "MR"


@pytest.mark.filterwarnings("ignore:The DICOM readers are highly experimental")
def test_siemens_mosaic_unpacks_with_its_geometry(tmp_path):
    from nibabel.nicom import dicomwrappers

    sample = Path(nib.__file__).parent / "nicom" / "tests" / "data" / "siemens_dwi_0.dcm.gz"
    if not sample.exists():
        pytest.skip("nibabel's mosaic test file is not installed")
    path = tmp_path / "mosaic.dcm"
    path.write_bytes(gzip.decompress(sample.read_bytes()))
    volume = read_volume(path)
    wrapper = dicomwrappers.wrapper_from_file(str(path))
    assert volume.shape == tuple(np.array(wrapper.image_shape)[[1, 0, 2]])
    # the same voxel (row 5, column 9, slice 3) sits at the same world position in both
    data = wrapper.get_data()
    world = LPS @ wrapper.affine @ np.array([5, 9, 3, 1.0])
    np.testing.assert_allclose(volume.affine @ np.array([9, 5, 3, 1.0]), world, atol=1e-4)
    assert volume.array[9, 5, 3] == pytest.approx(data[5, 9, 3])


def test_info_json_describes_the_series(capsys, ct_series):
    import json

    code, out, _ = run_cli(capsys, "info", ct_series, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["shape"] == [19, 17, 16] and info["modality"] == "CT"
    assert info["spacing"] == pytest.approx([0.8, 0.7, 2.5], abs=1e-5)
    assert np.allclose(info["affine"], oblique_affine(), atol=1e-5)
    assert len(info["orientation"]) == 3
