"""`dipmed info` output: the documented keys, and never a patient identifier."""

from __future__ import annotations

import json

from conftest import PATIENT, run_cli


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
