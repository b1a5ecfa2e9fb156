"""The real head CT from ../shared/data through DICOM and back (skipped where absent)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli, write_ct_series
from dipmed.io import read_volume

SHARED = Path(os.environ.get("DIPMED_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))
CT = SHARED / "ct_head_0051.nii.gz"

pytestmark = pytest.mark.skipif(not CT.exists(), reason=f"{CT} not present")


@pytest.fixture(scope="module")
def real_ct_series(tmp_path_factory):
    """The real CT (HU, LPS, 0.96x0.96x1.5 mm) written as a CT series, intercept -1024."""
    volume = read_volume(CT)
    folder = tmp_path_factory.mktemp("real") / "series"
    write_ct_series(folder, volume, intercept=-1024.0)
    return volume, folder


def test_real_ct_keeps_hu_and_geometry_through_dicom(tmp_path, capsys, real_ct_series):
    volume, folder = real_ct_series
    code, _, err = run_cli(capsys, "convert", folder, tmp_path / "back.nii.gz")
    assert code == 0, err
    back = nib.load(tmp_path / "back.nii.gz")
    np.testing.assert_array_equal(back.get_fdata(), nib.load(CT).get_fdata())
    np.testing.assert_allclose(back.affine, nib.load(CT).affine, atol=1e-3)


def test_real_ct_derived_series_reads_back_and_validates(tmp_path, capsys, real_ct_series):
    volume, folder = real_ct_series
    code, _, err = run_cli(capsys, "convert", folder, tmp_path / "derived")
    assert code == 0, err
    back = read_volume(tmp_path / "derived")
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-3)
    if shutil.which("dciodvfy"):
        for path in sorted((tmp_path / "derived").iterdir())[::27]:
            result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
            assert "Error" not in result.stdout + result.stderr, path.name
