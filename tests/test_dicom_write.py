"""Derived DICOM series: valid, new UIDs, same patient and study, data read back."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from conftest import run_cli
from dipmed.io import read_volume, write_volume
from dipmed.volume import Volume


def _headers(folder):
    return [pydicom.dcmread(p) for p in sorted(folder.iterdir())]


def test_derived_series_keeps_patient_study_and_data(tmp_path, capsys, ct_volume, ct_series):
    code, _, err = run_cli(capsys, "convert", ct_series, tmp_path / "derived")
    assert code == 0, err
    source, derived = _headers(ct_series), _headers(tmp_path / "derived")
    assert len(derived) == len(source)
    assert {d.SeriesInstanceUID for d in derived} == {derived[0].SeriesInstanceUID}
    assert derived[0].SeriesInstanceUID != source[0].SeriesInstanceUID
    sop_uids = {d.SOPInstanceUID for d in derived}
    assert len(sop_uids) == len(derived) and not sop_uids & {s.SOPInstanceUID for s in source}
    for ds in derived:
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        for key in (
            "StudyInstanceUID",
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "FrameOfReferenceUID",
        ):
            assert ds[key].value == source[0][key].value, key
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID in {
            s.SOPInstanceUID for s in source
        }
    back = read_volume(tmp_path / "derived")
    np.testing.assert_array_equal(back.array, ct_volume.array)
    np.testing.assert_allclose(back.affine, ct_volume.affine, atol=1e-3)


def test_float_data_read_back_within_one_stored_unit(tmp_path, ct_volume, ct_series):
    source = read_volume(ct_series)
    smooth = source.array * 0.731 + 0.123  # not integers: needs a fractional slope
    write_volume(source.with_array(smooth), tmp_path / "f", input_path=ct_series)
    slope = float(pydicom.dcmread(next((tmp_path / "f").iterdir())).RescaleSlope)
    assert np.max(np.abs(read_volume(tmp_path / "f").array - smooth)) <= slope


def test_new_grid_writes_more_thinner_slices_in_the_same_extent(tmp_path, ct_series):
    source = read_volume(ct_series)
    affine = source.affine.copy()
    affine[:3, 2] /= 4  # four thin slices centred within each thick one
    affine[:3, 3] -= 1.5 * affine[:3, 2]
    fine = Volume(np.repeat(source.array, 4, axis=2), affine, source.meta, source.source)
    write_volume(fine, tmp_path / "sr", input_path=ct_series, derivation="test grid")
    back = read_volume(tmp_path / "sr")
    assert back.shape == (19, 17, 64)
    np.testing.assert_allclose(back.affine, affine, atol=1e-3)
    np.testing.assert_array_equal(back.array, fine.array)
    first = pydicom.dcmread(tmp_path / "sr" / "IM00001.dcm")
    assert float(first.SliceThickness) == pytest.approx(0.625, abs=1e-4)


def test_rerun_gives_the_same_uids(tmp_path, ct_series):
    volume = read_volume(ct_series)
    for name in ("a", "b"):
        write_volume(volume, tmp_path / name, input_path=ct_series)
    a, b = _headers(tmp_path / "a"), _headers(tmp_path / "b")
    assert [x.SOPInstanceUID for x in a] == [y.SOPInstanceUID for y in b]


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy not installed (Debian dicom3tools; make test installs it as root)",
)
@pytest.mark.parametrize("grid", ["same", "finer"])
def test_derived_files_pass_dciodvfy(tmp_path, ct_series, grid):
    volume = read_volume(ct_series)
    if grid == "finer":
        affine = volume.affine.copy()
        affine[:3, 2] /= 2
        volume = Volume(
            np.repeat(volume.array, 2, axis=2) + 0.5, affine, volume.meta, volume.source
        )
    write_volume(volume, tmp_path / "out", input_path=ct_series)
    _assert_dciodvfy_clean(tmp_path / "out")


def test_multiframe_source_writes_classic_derived_slices(tmp_path, ct_volume):
    from dicom_factory import write_enhanced_mr

    source = write_enhanced_mr(tmp_path / "mf.dcm", ct_volume)
    write_volume(read_volume(source), tmp_path / "out", input_path=source)
    derived = _headers(tmp_path / "out")
    assert len(derived) == ct_volume.shape[2] and derived[0].Modality == "MR"
    assert derived[0].PatientID == "PID-999"
    np.testing.assert_allclose(read_volume(tmp_path / "out").array, ct_volume.array, atol=0.5)


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy not installed (Debian dicom3tools; make test installs it as root)",
)
def test_a_dicom_input_gets_its_uncertainty_as_a_valid_derived_series(tmp_path, capsys, ct_series):
    """--uncertainty FOLDER for DICOM input: a derived series of the input's geometry,
    numbered beside the restored one, valid for dciodvfy, readable by dipmed info; a
    NIfTI input asked for a DICOM uncertainty is refused before anything is written."""
    out, unc = tmp_path / "restored", tmp_path / "uncertainty"
    args = ["denoise", ct_series, out, "--uncertainty", unc, "--member-steps", "2"]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    restored, uncertainty = _headers(out), _headers(unc)
    assert len(uncertainty) == len(restored) == read_volume(ct_series).shape[2]
    assert uncertainty[0].SeriesInstanceUID != restored[0].SeriesInstanceUID
    assert (restored[0].SeriesNumber, uncertainty[0].SeriesNumber) == (1007, 1008)
    assert "uncertainty" in uncertainty[0].SeriesDescription
    _assert_dciodvfy_clean(unc)
    code, info, err = run_cli(capsys, "info", unc, "--json")
    assert code == 0, err
    described = json.loads(info)
    assert described["shape"] == list(read_volume(ct_series).shape)
    read_back = read_volume(unc).array
    assert read_back.min() >= 0 and 0 < read_back.mean() < 200  # an error std in HU
    nifti = tmp_path / "scan.nii.gz"
    assert run_cli(capsys, "convert", ct_series, nifti)[0] == 0
    args = ["denoise", nifti, tmp_path / "d.nii.gz", "--uncertainty", tmp_path / "u"]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "not DICOM" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d.nii.gz").exists() and not (tmp_path / "u").exists()


def _assert_dciodvfy_clean(folder):
    """Every file of a series: no Error line from dciodvfy."""
    for path in sorted(folder.iterdir()):
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        output = (result.stdout + result.stderr).splitlines()
        errors = [line for line in output if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"
