"""MR background: voxels whose data say "no signal" return 0; tissue is left alone."""

from __future__ import annotations

import numpy as np

from dipmed.restoration.noise.background import no_signal
from dipmed.restoration.noise.estimate import add_noise


def test_air_is_set_to_zero_and_tissue_is_not():
    sigma = 0.05
    clean = np.zeros((40, 40, 40), np.float32)
    clean[:, :, 20:] = 3 * sigma  # dim tissue: 3 noise stds
    noisy = add_noise(clean, sigma, "rician", np.random.default_rng(0))
    estimate = np.where(clean > 0, clean, 0.02).astype(np.float32)  # a biased air estimate
    zero = no_signal(noisy, estimate, sigma)
    assert zero[:, :, :19].mean() > 0.95  # air away from the boundary
    assert not zero[:, :, 21:].any()  # tissue, even at 3 sigma
    restored = np.where(zero, 0.0, estimate)  # what guided denoising returns
    assert np.sqrt(np.mean(restored[:, :, :19] ** 2)) < 0.25 * 0.02


def test_a_high_estimate_is_kept_even_where_the_data_look_like_air():
    sigma = 0.05
    noisy = add_noise(np.zeros((20, 20, 20), np.float32), sigma, "rician", np.random.default_rng(1))
    estimate = np.full(noisy.shape, 3 * sigma, np.float32)
    assert not no_signal(noisy, estimate, sigma).any()
