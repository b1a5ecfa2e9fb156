"""`dipmed info` output: the documented keys, and never a patient identifier."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from conftest import PATIENT, run_cli
from dicom_factory import write_stripped_enhanced_mr


def test_info_never_prints_patient_identifiers(capsys, ct_series):
    for args in ([], ["--json"]):
        code, out, err = run_cli(capsys, "info", ct_series, *args)
        assert code == 0
        for value in PATIENT.values():
            assert value not in out + err
            assert value.split("^")[0] not in out + err


def test_info_json_has_the_documented_keys(capsys, ct_series):
    code, out, _ = run_cli(capsys, "info", ct_series, "--json")
    info = json.loads(out)
    assert code == 0
    assert {"shape", "spacing", "affine", "orientation", "modality", "series"} <= set(info)
    assert len(info["affine"]) == 4 and all(len(row) == 4 for row in info["affine"])


def test_convert_reports_what_it_wrote(tmp_path, capsys, ct_series):
    code, out, _ = run_cli(capsys, "convert", ct_series, tmp_path / "x.nii.gz")
    assert code == 0 and "x.nii.gz" in out
    for value in PATIENT.values():
        assert value not in out


def _bold(path, count=3):
    """A 4D NIfTI of `count` volumes, 2 s apart (the header's time unit)."""
    image = nib.Nifti1Image(np.zeros((16, 15, 13, count), np.float32), np.eye(4))
    image.header.set_xyzt_units("mm", "sec")
    image.header["pixdim"][4] = 2.0
    nib.save(image, path)
    return path


def test_info_lists_the_volumes_of_a_4d_nifti(tmp_path, capsys):
    source = _bold(tmp_path / "bold.nii.gz")
    code, out, err = run_cli(capsys, "info", source, "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert listing["format"] == "nifti"
    assert [(v["index"], v["time_s"]) for v in listing["volumes"]] == [(0, 0), (1, 2), (2, 4)]
    code, out, _ = run_cli(capsys, "info", source)
    assert code == 0 and "3 volumes" in out and "volume    2  time_s=4" in out
    code, out, _ = run_cli(capsys, "info", source, "--volume", "1", "--json")
    assert code == 0 and json.loads(out)["shape"] == [16, 15, 13]


def test_info_lists_b_values_from_a_bval_file(tmp_path, capsys):
    source = _bold(tmp_path / "sub-01_dwi.nii.gz")
    (tmp_path / "sub-01_dwi.bval").write_text("0 1000 2000\n")
    code, out, _ = run_cli(capsys, "info", source, "--json")
    assert code == 0
    assert [v["b_value"] for v in json.loads(out)["volumes"]] == [0, 1000, 2000]


def test_restoring_a_4d_input_still_needs_volume(tmp_path, capsys):
    source = _bold(tmp_path / "bold.nii.gz")
    code, _, err = run_cli(capsys, "denoise", source, tmp_path / "o.nii.gz", "--max-iters", "1")
    assert code == 2 and err.strip().count("\n") == 0
    assert "is 4D with 3 volumes; choose one with --volume 0..2" in err
    assert not (tmp_path / "o.nii.gz").exists()


def test_assumed_geometry_reaches_sidecar_and_report(tmp_path, capsys):
    frames = np.random.default_rng(2).integers(100, 900, (10, 24, 20), dtype=np.uint16)
    source = write_stripped_enhanced_mr(tmp_path / "stripped.dcm", frames)
    out, report = tmp_path / "den.nii.gz", tmp_path / "report"
    fast = ["--method", "dip", "--max-iters", "2", "--seed", "1"]  # guided: minutes on CPU
    code, _, err = run_cli(capsys, "denoise", source, out, "--report", report, *fast)
    assert code == 0, err
    assert err.count("dipmed denoise: warning: ") == 2
    warnings = json.loads((tmp_path / "den.json").read_text())["Warnings"]
    assert len(warnings) == 2 and "ImagePositionPatient" in warnings[1]
    data = json.loads((report / "report.json").read_text())
    assert data["input"]["warnings"] == warnings
    assert [f["message"] for f in data["flags"] if f["code"] == "input_assumption"] == warnings
    assert "no ImagePositionPatient per frame" in (report / "report.html").read_text()
