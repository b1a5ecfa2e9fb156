"""Sample sheets and output names (dipmed.workflow), without running Snakemake."""

from __future__ import annotations

import pytest

from dipmed.errors import InputError
from dipmed.workflow import Sample, load_samples, restore_options

RUN = {"restore": {"device": "auto", "seed": 4, "max_iters": 0, "mode": "auto", "config": ""}}


@pytest.mark.parametrize(
    ("sample", "task", "factor", "name"),
    [
        ("sub-01_ses-2_T1w", "denoise", "", "sub-01_ses-2_desc-denoised_T1w"),
        ("sub-01_T2w", "sr", "1,1,4", "sub-01_res-1x1x4_desc-superres_T2w"),
        ("head_ct", "inpaint", "", "head_ct_desc-inpainted"),
    ],
)
def test_output_names_follow_bids_derivatives(sample, task, factor, name):
    assert Sample(sample, "x", task, factor=factor, mask="m").name == name


def _sheet(tmp_path, *rows: str):
    path = tmp_path / "samples.tsv"
    path.write_text("\n".join(["sample\tinput\ttask\tfactor\tmask", *rows]) + "\n")
    return path


def test_sheet_rows_become_samples_and_options(tmp_path):
    path = _sheet(tmp_path, "sub-1_T1w\ta.nii.gz\tsr\t1,1,2\t", "ct\tdicom dir\tdenoise\t\t")
    samples = load_samples(str(path))
    assert list(samples) == ["sub-1_res-1x1x2_desc-superres_T1w", "ct_desc-denoised"]
    options = restore_options(samples["ct_desc-denoised"], RUN)
    assert options == "--device auto --seed 4"
    assert "--factor 1,1,2" in restore_options(samples["sub-1_res-1x1x2_desc-superres_T1w"], RUN)


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


def test_duplicate_outputs_and_missing_sheets_are_refused(tmp_path):
    with pytest.raises(InputError, match="output name"):
        load_samples(str(_sheet(tmp_path, "a\tx\tdenoise\t\t", "a\ty\tdenoise\t\t")))
    with pytest.raises(InputError, match="cannot read sample sheet"):
        load_samples(str(tmp_path / "none.tsv"))


def test_a_glob_replaces_the_sheet(tmp_path):
    for name in ("sub-1_T1w.nii.gz", "sub-2_T1w.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    samples = load_samples("unused", str(tmp_path / "sub-*_T1w.nii.gz"))
    assert list(samples) == ["sub-1_desc-denoised_T1w", "sub-2_desc-denoised_T1w"]
