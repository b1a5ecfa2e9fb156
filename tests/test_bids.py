"""The BIDS App (`dipmed bids`): a small BIDS dataset built here, restored into derivatives
that the real BIDS validator accepts; participants selected; bad folders refused."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import bids_errors
from dipmed.cli import main
from dipmed.io import read_volume
from dipmed.phantom import add_rician_noise, mr_phantom

FAST = ["--quality", "fast", "--threads", "1"]
IMAGES = ("sub-01/anat/sub-01_T1w.nii.gz", "sub-02/ses-a/anat/sub-02_ses-a_T1w.nii.gz")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two participants (one with a session), noisy MR phantoms, and a file BIDS names but
    dipmed does not restore (a T1w's sidecar, a participants table)."""
    root = tmp_path_factory.mktemp("bids") / "raw"
    rng = np.random.default_rng(3)
    for n, relative in enumerate(IMAGES):
        clean = mr_phantom((24, 22, 16)) * (1 + 0.2 * n)
        image = nib.Nifti1Image(add_rician_noise(clean, 0.05 * clean.max(), rng), np.eye(4))
        image.header.set_xyzt_units("mm", "sec")
        path = root / relative
        path.parent.mkdir(parents=True)
        nib.save(image, path)
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text('{"EchoTime": 0.003}')
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "test", "BIDSVersion": "1.10.0", "Authors": ["a", "b"]})
    )
    (root / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    (root / "README").write_text("a test dataset\n")
    assert bids_errors(root) == []
    return root


@pytest.fixture(scope="module")
def derivatives(dataset) -> Path:
    """`dipmed bids` over every participant, written where BIDS Apps usually write."""
    out = dataset / "derivatives" / "dipmed"
    assert main([*["bids", str(dataset), str(out), "participant"], *FAST]) == 0
    return out


def test_every_participant_is_restored_into_valid_derivatives(dataset, derivatives):
    restored = sorted(p.relative_to(derivatives).as_posix() for p in derivatives.rglob("*.nii.gz"))
    assert restored == [
        "sub-01/anat/sub-01_desc-denoised_T1w.nii.gz",
        "sub-01/anat/sub-01_desc-uncertainty_T1w.nii.gz",
        "sub-02/ses-a/anat/sub-02_ses-a_desc-denoised_T1w.nii.gz",
        "sub-02/ses-a/anat/sub-02_ses-a_desc-uncertainty_T1w.nii.gz",
    ]
    assert bids_errors(derivatives) == []
    description = json.loads((derivatives / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "dipmed"
    assert description["SourceDatasets"] == [{"URL": "../.."}]  # the raw dataset, relative
    sidecar = json.loads((derivatives / "sub-01/anat/sub-01_desc-denoised_T1w.json").read_text())
    assert sidecar["Sources"] == ["bids:raw:sub-01/anat/sub-01_T1w.nii.gz"]
    assert sidecar["Parameters"] == {"task": "denoise", "quality": "fast"}
    assert sidecar["SkullStripped"] is False
    assert (derivatives / "reports/sub-01_desc-denoised_T1w/report.html").exists()


def test_a_bids_restoration_is_the_cli_restoration(dataset, derivatives, tmp_path):
    source = dataset / IMAGES[0]
    alone = tmp_path / "alone.nii.gz"
    assert main(["denoise", str(source), str(alone), *FAST]) == 0
    by_app = read_volume(derivatives / "sub-01/anat/sub-01_desc-denoised_T1w.nii.gz")
    np.testing.assert_array_equal(by_app.array, read_volume(alone).array)
    np.testing.assert_array_equal(by_app.affine, read_volume(source).affine)


def test_a_participant_label_selects_and_sr_names_its_resolution(dataset, tmp_path):
    out = tmp_path / "sr"
    args = ["bids", str(dataset), str(out), "participant", "--participant-label", "02"]
    assert main([*args, "--task", "sr", "--factor", "1,1,2", "--max-iters", "3"]) == 0
    restored = [p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")]
    assert restored == ["sub-02/ses-a/anat/sub-02_ses-a_res-1x1x2_desc-superres_T1w.nii.gz"]
    sidecar = json.loads(Path(out / restored[0].replace(".nii.gz", ".json")).read_text())
    assert sidecar["Resolution"].startswith("1x1x0.5 mm voxels")
    assert sidecar["Parameters"]["factor"] == [1, 1, 2]
    assert read_volume(out / restored[0]).shape == (24, 22, 32)
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["SourceDatasets"] == [{"URL": dataset.resolve().as_uri()}]
    assert bids_errors(out) == []


@pytest.mark.parametrize(
    ("where", "extra", "message"),
    [
        ("missing", [], "BIDS folder {raw} does not exist; give the dataset's root folder"),
        ("plain", [], "{raw} is not a BIDS dataset (no dataset_description.json); give the"),
        ("dataset", ["--participant-label", "09"], "participant 09 is not in {raw} (it has: 01"),
        ("dataset", ["--suffix", "FLAIR"], "no anatomical images (FLAIR) for participant(s)"),
    ],
)
def test_a_bad_folder_gets_one_line_and_nothing_is_written(
    dataset, tmp_path, capsys, where, extra, message
):
    raw = {"missing": tmp_path / "none", "plain": tmp_path, "dataset": dataset}[where]
    out = tmp_path / "out"
    assert main(["bids", str(raw), str(out), "participant", *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dipmed: error: " + message.format(raw=raw))
    assert not out.exists()


def test_an_output_inside_the_raw_dataset_is_refused(dataset, capsys):
    assert main(["bids", str(dataset), str(dataset / "out"), "participant"]) == 2
    assert "lies in the raw dataset" in capsys.readouterr().err
    assert not (dataset / "out").exists()
