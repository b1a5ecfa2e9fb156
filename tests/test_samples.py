"""data_samples/ is small, valid (a BIDS dataset) and exactly what its committed script
generates from its pinned sources."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import bids_errors
from dipmed.io import read_volume

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"
NAMES = ("sub-01/anat/sub-01_T1w.nii.gz", "sub-01/anat/sub-01_acq-thick_T1w.nii.gz", "ct_abdomen")


def _generate(folder: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", SAMPLES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.generate(folder)
    except subprocess.CalledProcessError:  # pip could not fetch a pinned source
        pytest.skip("PyPI is not reachable: the samples' sources cannot be fetched")


def test_samples_are_small_and_big_enough():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 2 * 2**20
    for name in NAMES:
        volume = read_volume(SAMPLES / name)
        assert min(volume.shape) >= 16


def test_samples_are_a_valid_bids_dataset():
    assert bids_errors(SAMPLES) == []


def test_samples_regenerate_identically(tmp_path):
    _generate(tmp_path)
    for name in NAMES:
        committed, fresh = read_volume(SAMPLES / name), read_volume(tmp_path / name)
        np.testing.assert_array_equal(fresh.array, committed.array)
        np.testing.assert_array_equal(fresh.affine, committed.affine)
        assert fresh.meta == committed.meta
