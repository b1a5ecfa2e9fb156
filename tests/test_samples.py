"""data_samples/ is small, valid and exactly what its committed script generates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dipmed.io import read_volume

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


def _generate(folder: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", SAMPLES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(folder)


def test_samples_are_small_and_big_enough():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 2 * 2**20
    for name in ("sub-phantom01_T1w.nii.gz", "ct_phantom"):
        volume = read_volume(SAMPLES / name)
        assert min(volume.shape) >= 16


@pytest.mark.parametrize("name", ["sub-phantom01_T1w.nii.gz", "ct_phantom"])
def test_samples_regenerate_identically(tmp_path, name):
    _generate(tmp_path)
    committed, fresh = read_volume(SAMPLES / name), read_volume(tmp_path / name)
    np.testing.assert_array_equal(fresh.array, committed.array)
    np.testing.assert_array_equal(fresh.affine, committed.affine)
    assert fresh.meta == committed.meta
