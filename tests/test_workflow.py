"""The Snakemake workflow, run for real in a copy of the repository: lint, dry run, a
local run over data_samples/, resumption, a derived DICOM output, a bad sample under
--keep-going, a sheet naming missing paths, and SLURM."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import bids_errors
from dipmed.io import read_volume
from slurm_cluster import missing, slurm_cluster

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("Snakefile", "config", "profiles", "data_samples")
QUICK = {  # the plumbing is under test here; the methods are tested on their own
    "restore": {"max_iters": 3, "quality": "fast"},
    "resources": {"threads": 1, "mem_mb": 2000},
}
DAEMONS = ("slurmctld", "slurmd")
DCIODVFY_MISSING = "dciodvfy not installed (Debian dicom3tools; make test installs it as root)"
NAMES = (  # the denoised samples first
    "sub-01/anat/sub-01_desc-denoised_T1w",
    "ct_abdomen_desc-denoised",
    "sub-01/anat/sub-01_acq-thick_res-1x1x2_desc-superres_T1w",
)
UNCERTAINTY = ("sub-01/anat/sub-01_desc-uncertainty_T1w", "ct_abdomen_desc-uncertainty")


@pytest.fixture
def workflow(tmp_path) -> Path:
    """A copy of the workflow's files, with a quick-settings config beside them."""
    folder = tmp_path / "wf"
    folder.mkdir()
    for name in COPIED:
        source = ROOT / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, folder / name)
    (folder / "quick.yaml").write_text(yaml.safe_dump(QUICK))
    return folder


def snakemake(folder: Path, *args: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", *args]
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_lint_is_clean(workflow):
    done = snakemake(workflow, "--lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Congratulations" in done.stdout + done.stderr


def test_every_config_key_has_a_description_and_a_default():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(properties, prefix=""):
        for key, spec in properties.items():
            assert spec.get("description") and "default" in spec, prefix + key
            walk(spec.get("properties", {}), f"{prefix}{key}.")

    walk(schema["properties"])


def test_a_config_error_names_the_key(workflow):
    (workflow / "bad.yaml").write_text("restore: {max_iters: -1}\n")
    done = snakemake(workflow, "-n", "--configfile", "bad.yaml")
    assert done.returncode != 0 and "max_iters" in done.stdout + done.stderr


def test_a_bad_sheet_row_is_named_before_anything_runs(workflow):
    (workflow / "config" / "samples.tsv").write_text("sample\tinput\ttask\nx\ty\tsharpen\n")
    done = snakemake(workflow, "-n")
    assert done.returncode != 0
    assert (
        "samples.tsv row 2 (sample x): task 'sharpen' must be one of" in done.stdout + done.stderr
    )
    assert not (workflow / "results").exists()


def test_dry_run_plans_one_restore_per_sample(workflow):
    done = snakemake(workflow, "-n", "--configfile", "quick.yaml")
    assert done.returncode == 0, done.stderr
    counts = dict(
        line.split()[:2]
        for line in done.stdout.splitlines()
        if line.split()[:1] in (["restore"], ["restore_with_uncertainty"])
    )
    assert counts == {"restore": "1", "restore_with_uncertainty": "2"}  # 2 denoised samples


def test_local_run_writes_everything_and_resumes(workflow):
    done = snakemake(workflow, "--cores", "2", "--configfile", "quick.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    results = workflow / "results"
    _check_outputs(results)
    again = snakemake(workflow, "-n", "--configfile", "quick.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr
    (results / "dipmed" / f"{NAMES[1]}.nii.gz").unlink()
    plan = snakemake(workflow, "-n", "--configfile", "quick.yaml").stdout
    outputs = _planned_outputs(plan, "restore_with_uncertainty")
    assert len(outputs) == 1 and f"{NAMES[1]}.nii.gz" in outputs[0]
    page = snakemake(workflow, "--report", "results/report.html", "--configfile", "quick.yaml")
    assert page.returncode == 0, page.stderr[-2000:]
    assert (results / "report.html").stat().st_size > 100_000


def test_a_bad_sample_fails_alone_with_the_cli_message(workflow):
    (workflow / "broken.nii.gz").write_bytes(b"\x1f\x8b this is not a volume")
    sheet = workflow / "config" / "samples.tsv"
    good = "ct_abdomen\tdata_samples/ct_abdomen\tdenoise\t"
    rows = ["sample\tinput\ttask\tfactor", good, "sub-broken_T1w\tbroken.nii.gz\tdenoise\t"]
    sheet.write_text("\n".join(rows) + "\n")
    args = ("--cores", "2", "--keep-going", "--configfile", "quick.yaml")
    done = snakemake(workflow, *args)
    assert done.returncode != 0
    results = workflow / "results"
    assert (results / "dipmed" / f"{NAMES[1]}.nii.gz").exists()
    log = results / "logs" / "restore" / "sub-broken" / "anat" / "sub-broken_desc-denoised_T1w.log"
    log = log.read_text()
    lines = log.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dipmed: error:") and "broken" in lines[0]
    assert "Traceback" not in log
    assert not [p for p in (results / "dipmed").rglob("sub-broken*") if p.is_file()]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "sub-2_T1w\tdata_samples/sub-01/anat/sub-01_T1w.nii.gz\tdenoise\tclean/sub-2.nii.gz\t",
            "row 3 (sample sub-2_T1w): column reference: clean/sub-2.nii.gz does not exist; "
            "correct the path (relative to the working directory {folder}) or remove the row",
        ),
        (
            "sub-2_T1w\tdata_samples/sub-01/anat/sub-01_T1w.nii.gz\tdenoise\t\tdicom",
            "row 3 (sample sub-2_T1w): format dicom needs DICOM input (a folder or a DICOM "
            "file), but input data_samples/sub-01/anat/sub-01_T1w.nii.gz is NIfTI; set "
            "format to nifti or leave the cell empty",
        ),
    ],
)
def test_a_sheet_error_is_one_line_before_any_job(workflow, row, message):
    sheet = workflow / "config" / "samples.tsv"
    good = "ct_abdomen\tdata_samples/ct_abdomen\tdenoise\t\t"
    sheet.write_text(f"sample\tinput\ttask\treference\tformat\n{good}\n{row}\n")
    done = snakemake(workflow, "--cores", "1", "--keep-going", "--configfile", "quick.yaml")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    expected = f"sample sheet: config/samples.tsv {message.format(folder=workflow)}"
    assert [line for line in output.splitlines() if "samples.tsv" in line] == [expected]
    assert "Traceback" not in output and "MissingInputException" not in output
    assert "Building DAG" not in output and not (workflow / "results").exists()


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason=DCIODVFY_MISSING)
def test_a_dicom_sample_gives_a_valid_derived_series_beside_a_nifti_one(workflow):
    sheet = workflow / "config" / "samples.tsv"
    rows = [
        "sample\tinput\ttask\tformat",
        "sub-01_acq-thick_T1w\tdata_samples/sub-01/anat/sub-01_acq-thick_T1w.nii.gz\tdenoise\t",
        "ct_abdomen\tdata_samples/ct_abdomen\tdenoise\tdicom",
    ]
    sheet.write_text("\n".join(rows) + "\n")
    done = snakemake(workflow, "--cores", "2", "--configfile", "quick.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    results = workflow / "results"
    series = results / "dipmed" / NAMES[1]
    source, derived = read_volume(workflow / "data_samples" / "ct_abdomen"), read_volume(series)
    assert derived.shape == source.shape
    np.testing.assert_allclose(derived.affine, source.affine, atol=1e-3)
    slices = sorted(series.glob("*.dcm"))  # Snakemake adds a hidden .snakemake_timestamp
    assert len(slices) == source.shape[2]
    for path in slices:
        check = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [ln for ln in (check.stdout + check.stderr).splitlines() if "Error" in ln]
        assert not errors, f"{path.name}: {errors}"
    assert not (results / "dipmed" / f"{NAMES[1]}.json").exists()
    assert (results / "dipmed" / f"{UNCERTAINTY[1]}.nii.gz").stat().st_size > 1000
    nifti = "sub-01/anat/sub-01_acq-thick_desc-denoised_T1w"  # the smaller MR sample
    assert (results / "dipmed" / f"{nifti}.nii.gz").stat().st_size > 1000
    assert json.loads((results / "dipmed" / f"{nifti}.json").read_text())["Description"]
    assert bids_errors(results / "dipmed") == []  # the series folder is in .bidsignore
    for name in (nifti, NAMES[1]):
        report = json.loads((results / "reports" / name / "report.json").read_text())
        assert report["output"]["format"] == ("dicom" if "ct_" in name else "nifti")
        assert (results / "reports" / name / "report.html").exists()


@pytest.mark.skipif(missing() is not None, reason=missing() or "")
def test_slurm_run_through_the_profile(workflow, tmp_path):
    """One sample (the local run covers every kind): its job goes through sbatch with the
    profile's resources, a GPU included."""
    quick = {**QUICK, "resources": {**QUICK["resources"], "gpu": 1}}
    (workflow / "quick.yaml").write_text(yaml.safe_dump(quick))
    sheet = workflow / "config" / "samples.tsv"
    sheet.write_text("sample\tinput\ttask\nct_abdomen\tdata_samples/ct_abdomen\tdenoise\n")
    with slurm_cluster(tmp_path / "slurm") as env:
        args = ("--profile", "profiles/slurm", "--configfile", "quick.yaml")
        done = snakemake(workflow, *args, "--slurm-init-seconds-before-status-checks", "2", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        pids = [(tmp_path / "slurm" / f"{d}.pid").read_text().split()[0] for d in DAEMONS]
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # stopped by pid file
    _check_outputs(workflow / "results", NAMES[1:2], UNCERTAINTY[1:])
    report = json.loads((workflow / "results/reports" / NAMES[1] / "report.json").read_text())
    environment = report["provenance"]["environment"]
    assert environment["slurm_job_id"] and environment["slurm_gpus_on_node"] == "1"


def _planned_outputs(plan: str, rule: str) -> list[str]:
    """The output lines of each `rule` job in a dry run's plan."""
    lines = plan.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() in (f"rule {rule}:",)]
    return [next(line for line in lines[i:] if line.strip().startswith("output:")) for i in starts]


def _check_outputs(results: Path, names=NAMES, uncertain=UNCERTAINTY) -> None:
    for name in names:
        assert (results / "dipmed" / f"{name}.nii.gz").stat().st_size > 1000
        sidecar = json.loads((results / "dipmed" / f"{name}.json").read_text())
        assert sidecar["Description"]
        for file in ("report.json", "report.html"):
            assert (results / "reports" / name / file).exists()
        assert (results / "logs" / "restore" / f"{name}.log").exists()
        assert (results / "benchmarks" / "restore" / f"{name}.tsv").exists()
    for name in uncertain:  # denoised: restore.uncertainty is on by default
        assert (results / "dipmed" / f"{name}.nii.gz").stat().st_size > 1000
    description = json.loads((results / "dipmed" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert bids_errors(results / "dipmed") == []  # the CT (BIDS has no CT) is in .bidsignore
    with (results / "summary.tsv").open() as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    assert sorted(Path(r["report"]).name for r in rows) == sorted(Path(n).name for n in names)
    assert (results / "summary.html").exists()
