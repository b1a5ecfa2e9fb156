"""Reports end to end: report.json's shape and figures, identifiers kept out, summaries."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pydicom
import pytest

from conftest import PATIENT, digest, run_cli, run_cli_quietly, write_ct_series, write_mr_pair
from dipmed.phantom import ct_phantom
from dipmed.restoration.guided.collaborative import CollaborativeSettings
from dipmed.volume import Volume

FAST = ["--member-steps", "8", "--max-iters", "40", "--seed", "3"]
ACCESSION = "ACC-778899"


@pytest.fixture(scope="module")
def denoised_report(tmp_path_factory):
    """One denoising with its report, shared by the tests that read it."""
    tmp_path = tmp_path_factory.mktemp("denoised")
    clean, noisy = write_mr_pair(tmp_path)
    out, folder = tmp_path / "den.nii.gz", tmp_path / "report"
    args = ["denoise", noisy, out, "--report", folder, "--reference", clean, *FAST]
    code, _, err = run_cli_quietly(*args)
    assert code == 0, err
    return out, folder, json.loads((folder / "report.json").read_text())


def test_report_psnr_equals_an_independent_computation(mr_pair, denoised_report):
    clean, _ = mr_pair
    out, _, report = denoised_report
    restored = np.asarray(nib.load(out).dataobj, np.float64)
    reference = np.asarray(nib.load(clean).dataobj, np.float64)
    peak = reference.max() - reference.min()
    psnr = 10 * np.log10(peak**2 / np.mean((restored - reference) ** 2))
    assert report["metrics"]["restored"]["psnr"] == pytest.approx(psnr, abs=0.05)
    assert report["metrics"]["data_range"] == pytest.approx(peak)


def test_report_holds_what_downstream_tools_read(denoised_report):
    _, folder, report = denoised_report
    metrics = report["metrics"]
    for name in ("input", "baseline", "restored"):
        for key in ("psnr", "ssim", "nrmse", "psnr_foreground", "ssim_foreground", "sigma", "snr"):
            assert isinstance(metrics[name][key], float), (name, key)
    assert metrics["restored"]["psnr"] > metrics["input"]["psnr"] + 0.5  # restored beats noisy
    assert metrics["restored"]["sigma"] < metrics["input"]["sigma"]
    assert abs(metrics["residual"]["correlation_with_restored"]) < 0.5
    assert metrics["data_range_method"] == "reference max - min"
    fit = report["fit"]
    assert fit["method"] == "guided" and fit["device"] == "cpu" and fit["seconds"] > 0
    # guided: every candidate with its risk, the returned one the lowest
    risks = {c["name"]: c["risk"] for c in fit["candidates"]}
    assert set(risks) == {"input", "guide", "final", "smooth"} and risks["input"] == 1.0
    (returned,) = [c["name"] for c in fit["candidates"] if c["returned"]]
    assert risks[returned] == min(risks.values()) and returned == fit["rule"]["chosen"]
    # each member's loss per step beside its check (this pair's air reads correlated
    # noise: auto takes a SURE member, whose check is the held-out half)
    assert len(fit["members"]) == 1 and "curve" not in fit
    (member,) = fit["members"]
    assert member["step"] == list(range(1, fit["iterations"] + 1))
    assert len(member["trained"]) == len(member["held_out"]) == fit["iterations"]
    provenance = report["provenance"]
    assert provenance["seed"] == 3 and provenance["config"]["guided"]["iterations"] == 8
    assert {"dipmed", "torch", "monai", "numpy"} <= set(provenance["versions"])
    assert provenance["command_line"][:2] == ["dipmed", "denoise"]
    assert len(provenance["input_sha256"]) == 64
    html = (folder / "report.html").read_text()
    assert html.count("<img ") >= 5 and "data:image/png;base64," in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    held_out = "a pair never trained on" if fit["loss"] == "recorrupted" else "held-out half"
    assert held_out in html and "<h3>Candidates</h3>" in html  # the member's check
    assert "Misfit |A(x) - y|" not in html  # no DIP misfit curve: guided has none
    # the guide's pair only where SURE members fit around it (or no member): the methods
    # text says SURE chose the guide's variant exactly then
    pair = fit["rule"]["member"] == "sure"
    assert fit["rule"]["guide_pair"] == pair and ("SURE kept the" in html) == pair
    # the variant's scale as the engine ran it: with a member, the guide's echo out
    scale = CollaborativeSettings().smooth_scale_echo
    assert fit["rule"]["final_echo"] and "echo of the noise" in html
    assert fit["rule"]["smooth_scale"] == scale and f"covariance x {scale}" in html
    low, high = CollaborativeSettings().homogeneous  # flat groups their mean, said and kept
    assert fit["rule"]["homogeneous"] == [low, high] and f"under {low} noise standard" in html


def test_a_dicom_report_keeps_patient_identifiers_out(tmp_path, capsys):
    volume = Volume(ct_phantom((30, 28, 18)), np.diag([0.9, 0.9, 2.0, 1.0]))
    noisy = volume.with_array(
        np.round(volume.array + np.random.default_rng(1).normal(0, 25, volume.shape))
    )
    series = tmp_path / "series"
    write_ct_series(series, noisy, AccessionNumber=ACCESSION)
    before = digest(series)
    out, folder = tmp_path / "derived", tmp_path / "report"
    code, stdout, stderr = run_cli(
        capsys, "denoise", series, out, "--report", folder, "--member-steps", "2"
    )
    assert code == 0, stderr
    rule = json.loads((folder / "report.json").read_text())["fit"]["rule"]
    assert not rule["final_echo"] and rule["smooth_scale"] == CollaborativeSettings().smooth_scale
    texts = [stdout, stderr] + [p.read_text() for p in folder.iterdir()]
    for token in [*PATIENT.values(), "DOE", "JANE", "1980-02-29", ACCESSION]:
        assert all(token not in text for text in texts), token
    derived = pydicom.dcmread(sorted(out.iterdir())[0])
    assert str(derived.PatientName) == PATIENT["PatientName"]  # the derived DICOM keeps them
    assert digest(series) == before


def test_identifiers_in_paths_are_redacted(tmp_path, capsys):
    volume = Volume(ct_phantom((24, 22, 16)), np.eye(4))
    series = tmp_path / "PID-123456"  # a folder named after the patient
    write_ct_series(series, volume)
    folder = tmp_path / "report"
    args = ["denoise", series, tmp_path / "o.nii.gz", "--report", folder, "--member-steps", "2"]
    assert run_cli(capsys, *args)[0] == 0
    report = (folder / "report.json").read_text()
    assert "PID-123456" not in report and "[redacted]" in report


def test_sr_report_compares_on_the_output_grid(tmp_path, capsys, mr_pair):
    clean, _ = mr_pair
    thick = tmp_path / "thick.nii.gz"
    assert run_cli(capsys, "degrade", clean, thick, "--factor", "1,1,2")[0] == 0
    folder = tmp_path / "report"
    args = ["sr", thick, tmp_path / "sr.nii.gz", "--factor", "1,1,2", "--report", folder]
    code, _, err = run_cli(capsys, *args, "--reference", clean, *FAST)
    assert code == 0, err
    report = json.loads((folder / "report.json").read_text())
    assert report["output"]["shape"] == [34, 30, 22]
    assert report["metrics"]["input"]["grid"].startswith("nearest")
    assert report["metrics"]["restored"]["psnr"] > report["metrics"]["input"]["psnr"]


def test_a_reference_off_the_output_grid_is_refused(tmp_path, capsys, mr_pair):
    clean, noisy = mr_pair
    folder, out = tmp_path / "report", tmp_path / "o.nii.gz"
    args = ["sr", noisy, out, "--factor", "1,1,2", "--report", folder, "--reference", clean]
    code, stdout, err = run_cli(capsys, *args)
    assert code == 2 and "not the output grid" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not folder.exists()


def test_an_existing_report_folder_needs_overwrite(tmp_path, capsys, mr_pair):
    _, noisy = mr_pair
    folder = tmp_path / "report"
    folder.mkdir()
    code, _, err = run_cli(capsys, "denoise", noisy, tmp_path / "o.nii.gz", "--report", folder)
    assert code == 2 and "--overwrite" in err
    assert not (tmp_path / "o.nii.gz").exists()


def test_summarize_gives_one_row_per_report(tmp_path, capsys, mr_pair, denoised_report):
    _, first, _ = denoised_report
    _, noisy = mr_pair
    second = tmp_path / "second"
    args = ["denoise", noisy, tmp_path / "b.nii.gz", "--report", second, "--max-iters", "3"]
    args += ["--method", "dip"]
    assert run_cli(capsys, *args)[0] == 0
    out = tmp_path / "summary"
    code, _, err = run_cli(capsys, "summarize", first / "report.json", second, "--out", out)
    assert code == 0, err
    header, *rows = (out / "summary.tsv").read_text().splitlines()
    columns = header.split("\t")
    assert len(rows) == 2 and all(len(r.split("\t")) == len(columns) for r in rows)
    table = [dict(zip(columns, r.split("\t"), strict=True)) for r in rows]
    assert table[0]["psnr_restored"] != "NA" and table[1]["psnr_restored"] == "NA"
    assert "iteration_cap" in table[1]["flags"]
    html = (out / "summary.html").read_text()
    link = os.path.relpath(first / "report.html", out)  # relative: the folders travel together
    assert html.count("<tr>") == 3 and f'href="{link}"' in html


def test_summarize_refuses_what_is_not_a_report(tmp_path, capsys):
    bogus = tmp_path / "x.json"
    bogus.write_text("{}")
    code, _, err = run_cli(capsys, "summarize", bogus, "--out", tmp_path / "s")
    assert code == 2 and "not a dipmed report" in err and not (tmp_path / "s").exists()
