"""The restoration commands end to end on files: formats, grids, bad input."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest

from conftest import PATIENT, digest, run_cli
from dipmed.io import read_volume
from dipmed.volume import world_centre

FAST = ["--max-iters", "3", "--member-steps", "3", "--mode", "2d", "--seed", "1"]


@pytest.fixture
def small_nifti(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.normal(100, 10, (20, 18, 16))).astype(np.float32)
    affine = np.diag([1.1, 1.2, 2.0, 1.0])
    affine[:3, 3] = [5, 6, 7]
    path = tmp_path / "sub-01_T1w.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_denoise_nifti_keeps_grid_and_header(tmp_path, capsys, small_nifti):
    code, out, err = run_cli(capsys, "denoise", small_nifti, tmp_path / "d.nii.gz", *FAST)
    assert code == 0, err
    before, after = nib.load(small_nifti), nib.load(tmp_path / "d.nii.gz")
    assert after.shape == before.shape
    np.testing.assert_allclose(after.affine, before.affine, atol=1e-6)
    assert "returned the" in out  # guided: which candidate the risk chose


def test_denoise_dicom_writes_a_derived_series(tmp_path, capsys, ct_series):
    code, out, err = run_cli(capsys, "denoise", ct_series, tmp_path / "den", *FAST)
    assert code == 0, err
    first = pydicom.dcmread(sorted((tmp_path / "den").iterdir())[0])
    assert list(first.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert "Deep Image Prior" in first.DerivationDescription
    for value in PATIENT.values():
        assert value not in out + err


def test_sr_output_grid_is_finer_over_the_same_extent(tmp_path, capsys, small_nifti):
    code, _, err = run_cli(
        capsys, "sr", small_nifti, tmp_path / "sr.nii.gz", "--factor", "1,1,2", *FAST
    )
    assert code == 0, err
    before, after = read_volume(small_nifti), read_volume(tmp_path / "sr.nii.gz")
    assert after.shape == (20, 18, 32)
    assert after.spacing == pytest.approx((1.1, 1.2, 1.0))
    np.testing.assert_allclose(world_centre(after), world_centre(before), atol=1e-4)


def test_degrade_then_restore_round_trip(tmp_path, capsys, small_nifti):
    code, _, err = run_cli(
        capsys,
        "degrade",
        small_nifti,
        tmp_path / "thick.nii.gz",
        "--factor",
        "1,1,4",
        "--noise",
        "rician",
        "--sigma",
        "0.05",
    )
    assert code == 0, err
    thick = read_volume(tmp_path / "thick.nii.gz")
    assert thick.shape == (20, 18, 4) and thick.spacing[2] == pytest.approx(8.0)
    np.testing.assert_allclose(
        world_centre(thick), world_centre(read_volume(small_nifti)), atol=1e-4
    )


def test_inpaint_needs_a_mask_on_the_same_grid(tmp_path, capsys, small_nifti):
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), mask)
    before = digest(small_nifti)
    code, _, err = run_cli(
        capsys, "inpaint", small_nifti, tmp_path / "i.nii.gz", "--mask", mask, *FAST
    )
    assert code == 2 and "--mask shape" in err
    assert not (tmp_path / "i.nii.gz").exists() and digest(small_nifti) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sr", "IN", "OUT", "--factor", "1,1"], "three integers"),
        (["denoise", "IN", "OUT", "--config", "missing.yaml"], "cannot read config"),
        (["denoise", "IN", "OUT", "--device", "cuda"], "CUDA"),
        (["denoise", "IN", "IN"], "is the input"),
    ],
)
def test_restore_usage_errors(tmp_path, capsys, small_nifti, args, message):
    if message == "CUDA":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present")
    out = tmp_path / "o.nii.gz"
    argv = [small_nifti if a == "IN" else out if a == "OUT" else a for a in args]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_non_finite_voxels_are_refused(tmp_path, capsys):
    data = np.ones((16, 16, 16), np.float32)
    data[3, 4, 5] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    code, _, err = run_cli(capsys, "denoise", path, tmp_path / "o.nii.gz", *FAST)
    assert code == 2 and "1 NaN or infinite" in err
    assert not (tmp_path / "o.nii.gz").exists()
