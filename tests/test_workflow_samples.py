"""Sample sheets and output names (dipmed.workflow), without running Snakemake."""

from __future__ import annotations

import re

import pytest

from dipmed.errors import InputError
from dipmed.workflow import Sample, load_samples, restore_options

RUN = {"restore": {"device": "auto", "seed": 4, "max_iters": 0, "mode": "auto", "config": ""}}


@pytest.mark.parametrize(
    ("sample", "task", "factor", "name", "uncertainty"),
    [
        (
            "sub-01_ses-2_T1w",
            "denoise",
            "",
            "sub-01/ses-2/anat/sub-01_ses-2_desc-denoised_T1w",
            "sub-01/ses-2/anat/sub-01_ses-2_desc-uncertainty_T1w.nii.gz",
        ),
        (
            "sub-01_T2w",
            "sr",
            "1,1,4",
            "sub-01/anat/sub-01_res-1x1x4_desc-superres_T2w",
            "sub-01/anat/sub-01_res-1x1x4_desc-uncertainty_T2w.nii.gz",
        ),
        ("head_ct", "inpaint", "", "head_ct_desc-inpainted", "head_ct_desc-uncertainty.nii.gz"),
        (  # an input's own desc- and res- give way to the output's
            "sub-3_res-2_desc-preproc_T1w",
            "sr",
            "1,1,2",
            "sub-3/anat/sub-3_res-1x1x2_desc-superres_T1w",
            "sub-3/anat/sub-3_res-1x1x2_desc-uncertainty_T1w.nii.gz",
        ),
    ],
)
def test_output_names_follow_bids_derivatives(sample, task, factor, name, uncertainty):
    made = Sample(sample, "x", task, factor=factor, mask="m")
    assert made.name == name
    assert made.uncertainty == uncertainty
    assert made.bids == sample.startswith("sub-")


def _sheet(tmp_path, *rows: str):
    path = tmp_path / "samples.tsv"
    path.write_text("\n".join(["sample\tinput\ttask\tfactor\tmask", *rows]) + "\n")
    return path


def test_sheet_rows_become_samples_and_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.nii.gz").write_bytes(b"")
    (tmp_path / "dicom dir").mkdir()
    path = _sheet(tmp_path, "sub-1_T1w\ta.nii.gz\tsr\t1,1,2\t", "ct\tdicom dir\tdenoise\t\t")
    samples = load_samples(str(path))
    sr = "sub-1/anat/sub-1_res-1x1x2_desc-superres_T1w"
    assert list(samples) == [sr, "ct_desc-denoised"]
    options = restore_options(samples["ct_desc-denoised"], RUN)
    assert options == "--device auto --seed 4"
    assert "--factor 1,1,2" in restore_options(samples[sr], RUN)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a\tx.nii.gz\tsharpen\t\t", "task 'sharpen'"),
        ("a\tx.nii.gz\tsr\t2\t", "sr needs factor"),
        ("a\tx.nii.gz\tinpaint\t\t", "inpaint needs a mask"),
        ("a b\tx.nii.gz\tdenoise\t\t", "sample id"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, message):
    with pytest.raises(InputError, match=message) as error:
        load_samples(str(_sheet(tmp_path, row)))
    assert "row 2" in str(error.value)


def test_duplicate_outputs_and_missing_sheets_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("x", "y"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(InputError, match="output name"):
        load_samples(str(_sheet(tmp_path, "a\tx\tdenoise\t\t", "a\ty\tdenoise\t\t")))
    with pytest.raises(InputError, match="cannot read sample sheet"):
        load_samples(str(tmp_path / "none.tsv"))


def test_a_glob_replaces_the_sheet(tmp_path):
    for name in ("sub-1_T1w.nii.gz", "sub-2_T1w.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    samples = load_samples("unused", str(tmp_path / "sub-*_T1w.nii.gz"))
    assert list(samples) == [
        "sub-1/anat/sub-1_desc-denoised_T1w",
        "sub-2/anat/sub-2_desc-denoised_T1w",
    ]


def _formats_sheet(tmp_path, monkeypatch, *rows: str):
    """A sheet with a format column, read in `tmp_path` beside a NIfTI file and a folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mr.nii.gz").write_bytes(b"")
    (tmp_path / "ct").mkdir()
    path = tmp_path / "samples.tsv"
    path.write_text("\n".join(["sample\tinput\ttask\tformat", *rows]) + "\n")
    return str(path)


def test_format_is_nifti_unless_dicom_is_asked_for_dicom_input(tmp_path, monkeypatch):
    sheet = _formats_sheet(
        tmp_path, monkeypatch, "mr\tmr.nii.gz\tdenoise\t", "ct\tct\tdenoise\tdicom"
    )
    samples = load_samples(sheet)
    assert [s.format for s in samples.values()] == ["nifti", "dicom"]
    assert [s.output for s in samples.values()] == ["mr_desc-denoised.nii.gz", "ct_desc-denoised"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "mr\tmr.nii.gz\tdenoise\tdicom",
            "row 2 (sample mr): format dicom needs DICOM input (a folder or a DICOM file), "
            "but input mr.nii.gz is NIfTI; set format to nifti or leave the cell empty",
        ),
        ("ct\tct\tdenoise\tdcm", "row 2 (sample ct): format 'dcm' must be nifti or dicom"),
    ],
)
def test_bad_formats_are_named_with_the_fix(tmp_path, monkeypatch, row, message):
    with pytest.raises(InputError, match=re.escape(message)) as error:
        load_samples(_formats_sheet(tmp_path, monkeypatch, row))
    assert str(error.value).startswith(f"{tmp_path / 'samples.tsv'} row 2")


@pytest.mark.parametrize(
    ("row", "column", "path"),
    [
        ("a\tnone.nii.gz\tdenoise\t\t", "input", "none.nii.gz"),
        ("a\tx.nii.gz\tinpaint\t\tno/mask.nii.gz", "mask", "no/mask.nii.gz"),
        ("a\tx.nii.gz\tdenoise\t\t\tclean.nii.gz", "reference", "clean.nii.gz"),
    ],
)
def test_a_missing_path_names_row_column_and_path(tmp_path, monkeypatch, row, column, path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.nii.gz").write_bytes(b"")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"sample\tinput\ttask\tfactor\tmask\treference\n{row}\n")
    with pytest.raises(InputError) as error:
        load_samples(str(sheet))
    assert str(error.value) == (
        f"{sheet} row 2 (sample a): column {column}: {path} does not exist; correct the "
        f"path (relative to the working directory {tmp_path}) or remove the row"
    )
