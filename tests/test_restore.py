"""Restoration on tiny seeded phantoms (CPU, seconds): it must beat the naive answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from dipmed.config import load_config
from dipmed.phantom import head_phantom
from dipmed.restoration.dip.anchor import upsample_linear
from dipmed.restoration.noise.estimate import add_noise
from dipmed.restoration.operators import Downsample
from dipmed.restoration.restore import Task, restore
from dipmed.volume import Volume, world_centre

SMALL_NET = {"network.features": [8, 8, 16, 16, 32, 8], "fit.ema": 0.9}


def _config(mode: str, iters: int, **extra):
    return load_config(
        None,
        method="dip",
        mode=mode,
        stop="none",
        anchor_sigma=0.5,
        **{"fit.max_iters": iters, **SMALL_NET, **extra},
    )


def _psnr(estimate: np.ndarray, truth: np.ndarray, where=None) -> float:
    error = (estimate - truth) ** 2 if where is None else (estimate - truth)[where] ** 2
    return float(10 * np.log10(1.0 / np.mean(error)))


@pytest.fixture(scope="module")
def noisy_phantom():
    clean = head_phantom((24, 20, 18))
    noisy = add_noise(clean, 0.15, "gaussian", np.random.default_rng(0))
    return clean, noisy


@pytest.mark.parametrize(("mode", "iters"), [("2d", 100), ("3d", 40)])
def test_denoising_beats_the_noisy_input(noisy_phantom, mode, iters):
    clean, noisy = noisy_phantom
    result = restore(Volume(noisy, np.eye(4)), Task("denoise"), _config(mode, iters))
    assert result.run.mode == mode
    assert _psnr(result.volume.array, clean) > _psnr(noisy, clean) + 1.0
    assert result.volume.shape == noisy.shape


def test_super_resolution_beats_linear_and_keeps_the_centre():
    clean = head_phantom((24, 20, 32))
    thick = Downsample((1, 1, 4)).forward(torch.from_numpy(clean)[None, None].double())
    affine = np.diag([0.9, 0.9, 4.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    volume = Volume(thick[0, 0].float().numpy(), affine)
    result = restore(volume, Task("sr", factors=(1, 1, 4)), _config("2d", 150))
    linear = upsample_linear(volume.array, clean.shape)
    assert result.volume.shape == clean.shape
    assert _psnr(result.volume.array, clean) > _psnr(linear, clean) + 0.1
    assert result.volume.spacing == pytest.approx((0.9, 0.9, 1.0))
    np.testing.assert_allclose(world_centre(result.volume), world_centre(volume), atol=1e-9)


def test_noisy_thick_slices_are_denoised_then_fitted_not_returned_as_the_interpolation():
    """Noisy SR with a known level (given, or read from air): the thick slices are
    denoised first (guided), then the prior fits them down to their remaining error; the
    anchor must leave the rule a descent (a plain trilinear anchor once stopped it at 1).
    Without air or a given level, sr does not denoise first (a wavelet level can be
    structure)."""
    from dipmed.restoration.measurement import denoise_first
    from dipmed.restoration.runtime.context import RunContext

    clean = gaussian_filter(head_phantom((32, 28, 32)), 1.0)
    noisy = clean + np.random.default_rng(4).normal(0, 0.05, clean.shape)
    thick = Downsample((1, 1, 2)).forward(torch.from_numpy(noisy)[None, None].double())
    volume = Volume(thick[0, 0].float().numpy(), np.diag([1.0, 1.0, 2.0, 1.0]))
    task = Task("sr", factors=(1, 1, 2))
    assert denoise_first(volume, task, load_config(None), RunContext(torch.device("cpu"))) is None
    level = 0.05 / np.sqrt(2)  # the thick slices average 2 noisy voxels
    # few steps and pairs: the suite stays within 8 min
    quick = {"fit.max_iters": 100, "guided.iterations": 15, "guided.recorruptions": 2}
    config = load_config(None, mode="3d", seed=0, noise_sigma=level, **quick)
    result = restore(volume, task, config)
    linear = upsample_linear(volume.array, clean.shape)
    assert result.denoised_first is not None and result.denoised_first.chosen != "input"
    assert result.run.fit_sigma < 0.7 * result.sigma
    assert result.run.fit.best_iteration > 10
    assert _psnr(result.volume.array, clean) > _psnr(linear, clean) + 1.0


def test_the_sr_anchor_is_back_projected_to_just_above_the_noise_level():
    """Hard edges across thick slices: trilinear misses the data by far more than the
    noise; back-projection brings the misfit to 1.5 sigma^2 and the anchor nearer the truth."""
    from dipmed.restoration.dip.anchor import sr_anchor
    from dipmed.restoration.operators import apply

    clean = head_phantom((24, 20, 32))
    operator = Downsample((1, 1, 4))
    sigma = 0.01
    thick = apply(operator, clean) + np.random.default_rng(1).normal(0, sigma, (24, 20, 8))
    thick = thick.astype(np.float32)
    linear = upsample_linear(thick, clean.shape)
    anchor = sr_anchor(thick, clean.shape, sigma, operator, backproject=True)

    def misfit(x):
        return float(np.mean((apply(operator, x) - thick) ** 2))

    assert misfit(linear) > 4 * sigma**2
    assert misfit(anchor) == pytest.approx(1.5 * sigma**2, rel=0.05)
    assert _psnr(anchor, clean) > _psnr(linear, clean) + 0.1


def test_inpainting_beats_a_mean_fill_inside_the_mask():
    clean = head_phantom((24, 20, 18))
    mask = np.ones(clean.shape, dtype=bool)
    mask[9:14, 7:12, 6:11] = False  # a hole across brain and ventricle
    damaged = np.where(mask, clean, 0.0).astype(np.float32)
    result = restore(Volume(damaged, np.eye(4)), Task("inpaint", mask=mask), _config("2d", 100))
    mean_fill = np.where(mask, clean, clean[mask].mean())
    hole = ~mask
    assert _psnr(result.volume.array, clean, hole) > _psnr(mean_fill, clean, hole) + 1.0


def test_the_same_seed_gives_identical_output_on_cpu(noisy_phantom):
    _, noisy = noisy_phantom
    runs = [
        restore(Volume(noisy, np.eye(4)), Task("denoise"), _config("2d", 5, seed=s))
        for s in (3, 3, 4)
    ]
    np.testing.assert_array_equal(runs[0].volume.array, runs[1].volume.array)
    assert not np.array_equal(runs[0].volume.array, runs[2].volume.array)


def test_one_iteration_with_an_anchor_returns_the_anchor(noisy_phantom):
    from scipy.ndimage import gaussian_filter

    _, noisy = noisy_phantom
    config = load_config(
        None,
        method="dip",
        mode="2d",
        stop="none",
        anchor="gaussian",
        anchor_sigma=0.7,
        **{"fit.max_iters": 1, "fit.ema": 0.0},
    )
    result = restore(Volume(noisy, np.eye(4)), Task("denoise"), config)
    anchor = gaussian_filter(noisy, 0.7, mode="nearest")
    np.testing.assert_allclose(result.volume.array, anchor, atol=0.01)


def test_the_automatic_anchor_is_gentle_on_weak_noise_and_strong_on_heavy_noise():
    from dipmed.restoration.dip.anchor import smoothing_for

    clean = head_phantom((32, 30, 28))
    rng = np.random.default_rng(5)
    light = smoothing_for(add_noise(clean, 0.01, "gaussian", rng), 0.01)
    heavy = smoothing_for(add_noise(clean, 0.2, "gaussian", rng), 0.2)
    assert light < heavy


def test_a_volume_of_sixteen_voxels_a_side_fits_in_3d():
    """Every axis at most 16: the generator's grid would end in a one-voxel bottleneck,
    where batch norm cannot train (it raised); one axis is padded further instead."""
    noisy = head_phantom((16, 16, 12)) + np.random.default_rng(1).normal(0, 0.1, (16, 16, 12))
    result = restore(Volume(noisy, np.eye(4)), Task("denoise"), _config("3d", 3))
    assert result.volume.shape == (16, 16, 12) and np.isfinite(result.volume.array).all()
