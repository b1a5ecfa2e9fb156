"""NIfTI round trips keep data, affine and header codes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import oblique_affine, run_cli
from dipmed.io import read_volume, write_volume


def _save(path, data, affine, *, sform=2, qform=1, dtype=None):
    image = nib.Nifti1Image(data if dtype is None else data.astype(dtype), affine)
    image.set_sform(affine, sform)
    image.set_qform(affine, qform)
    image.header["descrip"] = b"source header"
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, path)
    return path


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_round_trip_keeps_data_affine_and_header_codes(tmp_path, capsys, dtype):
    rng = np.random.default_rng(0)
    data = rng.normal(100, 30, (13, 11, 17))
    data = np.round(data) if dtype == np.int16 else data
    affine = oblique_affine()
    source = _save(tmp_path / "in.nii.gz", data, affine, dtype=dtype)
    code, _, err = run_cli(capsys, "convert", source, tmp_path / "out.nii.gz")
    assert code == 0, err
    before, after = nib.load(source), nib.load(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(after.get_fdata(), before.get_fdata())
    np.testing.assert_allclose(after.affine, before.affine, atol=1e-6)
    for key in ("sform_code", "qform_code", "xyzt_units", "descrip"):
        assert after.header[key] == before.header[key], key
    np.testing.assert_allclose(after.header.get_qform(), before.header.get_qform(), atol=1e-5)
    assert after.get_data_dtype() == np.dtype(dtype)


def test_float_data_are_stored_without_loss(tmp_path):
    data = np.random.default_rng(1).random((16, 16, 16)).astype(np.float32) * 1e-3
    source = _save(tmp_path / "f.nii", data, np.eye(4))
    volume = read_volume(source)
    write_volume(volume, tmp_path / "g.nii", input_path=source)
    np.testing.assert_array_equal(read_volume(tmp_path / "g.nii").array, data)


def test_scaled_int_input_is_read_in_real_units(tmp_path):
    image = nib.Nifti1Image(np.arange(16**3, dtype=np.int16).reshape(16, 16, 16), np.eye(4))
    image.header.set_slope_inter(0.5, -10.0)
    nib.save(image, tmp_path / "s.nii.gz")
    array = read_volume(tmp_path / "s.nii.gz").array
    assert array[0, 0, 1] == pytest.approx(-9.5)


def test_4d_reads_the_chosen_volume(tmp_path, capsys):
    data = np.stack([np.full((16, 16, 16), v, np.float32) for v in (1, 2, 3)], axis=-1)
    source = _save(tmp_path / "bold.nii.gz", data, np.eye(4))
    assert read_volume(source, volume=2).array.mean() == pytest.approx(3.0)
    code, _, err = run_cli(capsys, "convert", source, tmp_path / "one.nii.gz")
    assert code == 2 and "--volume 0..2" in err


def test_sidecar_keeps_modality_across_conversion(tmp_path, ct_series, capsys):
    code, _, err = run_cli(capsys, "convert", ct_series, tmp_path / "scan.nii.gz")
    assert code == 0, err
    sidecar = json.loads((tmp_path / "scan.json").read_text())
    assert sidecar["Modality"] == "CT" and sidecar["Units"] == "HU"
    assert read_volume(tmp_path / "scan.nii.gz").meta.modality == "CT"
