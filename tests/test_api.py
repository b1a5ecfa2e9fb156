"""The Python API: arrays in, arrays out, the same values as the command line."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import dipmed
from conftest import run_cli
from dipmed.errors import InputError
from dipmed.phantom import add_rician_noise, mr_phantom


@pytest.fixture(scope="module")
def noisy_mr():
    clean = mr_phantom((28, 26, 20))
    return clean, add_rician_noise(clean, 0.05 * float(clean.max()), np.random.default_rng(3))


def test_denoise_gives_an_array_equal_to_the_clis_output(tmp_path, capsys, noisy_mr):
    clean, noisy = noisy_mr
    source, out = tmp_path / "sub-01_T1w.nii.gz", tmp_path / "out.nii.gz"
    nib.save(nib.Nifti1Image(noisy.astype(np.float32), np.diag([1.0, 1.0, 1.2, 1.0])), source)
    code, _, err = run_cli(capsys, "denoise", source, out, "--member-steps", "3", "--seed", "2")
    assert code == 0, err
    denoised = dipmed.denoise(noisy, spacing=(1, 1, 1.2), modality="MR", member_steps=3, seed=2)
    assert isinstance(denoised, np.ndarray) and denoised.dtype == np.float32
    np.testing.assert_array_equal(denoised, nib.load(out).get_fdata(dtype=np.float32))
    assert np.mean((denoised - clean) ** 2) < 0.5 * np.mean((noisy - clean) ** 2)


def test_a_volume_in_gives_a_volume_on_its_grid(tmp_path, noisy_mr):
    _, noisy = noisy_mr
    source = tmp_path / "sub-01_T1w.nii.gz"
    affine = np.diag([0.9, 1.0, 1.1, 1.0])
    affine[:3, 3] = [4.0, -5.0, 6.0]
    nib.save(nib.Nifti1Image(noisy.astype(np.float32), affine), source)
    volume = dipmed.read(source)
    restored = dipmed.denoise(volume, quality="fast")
    assert isinstance(restored, dipmed.Volume) and restored.meta.modality == "MR"
    np.testing.assert_allclose(restored.affine, affine, atol=1e-6)
    dipmed.write(restored, tmp_path / "fast.nii.gz", source=source)
    with pytest.raises(InputError, match="exists"):
        dipmed.write(restored, tmp_path / "fast.nii.gz")
    with pytest.raises(InputError, match="is the input itself"):
        dipmed.write(restored, source, source=source, overwrite=True)
    np.testing.assert_array_equal(nib.load(tmp_path / "fast.nii.gz").get_fdata(), restored.array)


def test_bad_arguments_raise_the_documented_error():
    with pytest.raises(InputError, match="3D array"):
        dipmed.denoise(np.zeros((4, 4)))
    with pytest.raises(InputError, match="config key guided.quality must be one of"):
        dipmed.denoise(np.zeros((16, 16, 16)), quality="fastest")
    with pytest.raises(InputError, match="known has shape"):
        dipmed.inpaint(np.zeros((16, 16, 16)), np.ones((8, 8, 8)))
