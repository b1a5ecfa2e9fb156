"""Noise estimation, simulated noise and the losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dipmed.phantom import head_phantom
from dipmed.restoration.dip.losses import make_loss
from dipmed.restoration.noise.estimate import add_noise, estimate_sigma


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_sigma_estimate_is_close_on_gaussian_noise(sigma):
    clean = head_phantom((40, 36, 34))
    noisy = add_noise(clean, sigma, "gaussian", np.random.default_rng(1))
    assert estimate_sigma(noisy) == pytest.approx(sigma, rel=0.15)


def test_sigma_of_a_smooth_volume_is_near_zero():
    x, y, z = np.meshgrid(*[np.linspace(0, 1, 32)] * 3, indexing="ij")
    assert estimate_sigma(x + 2 * y - z) < 1e-6


def test_rician_noise_has_the_rayleigh_floor():
    floor = add_noise(np.zeros((64, 64, 16)), 1.0, "rician", np.random.default_rng(0))
    assert floor.mean() == pytest.approx(np.sqrt(np.pi / 2), rel=0.02)


def test_rician_loss_is_minimal_near_the_true_magnitude_not_the_noisy_mean():
    rng = np.random.default_rng(0)
    sigma, truth = 0.1, 0.05  # low SNR: the Rician mean is far above the truth
    measured = torch.from_numpy(add_noise(np.full((20000,), truth), sigma, "rician", rng))
    rician, mse = make_loss("rician", sigma=sigma), make_loss("mse", sigma=sigma)
    candidates = torch.linspace(0.0, 0.3, 61)
    best_rician = candidates[
        int(np.argmin([rician(torch.full_like(measured, c), measured) for c in candidates]))
    ]
    best_mse = candidates[
        int(np.argmin([mse(torch.full_like(measured, c), measured) for c in candidates]))
    ]
    assert abs(best_rician - truth) < 0.03 < abs(best_mse - truth)


def test_rician_loss_approaches_half_mse_at_high_snr():
    measured = torch.full((100,), 10.0)
    predicted = torch.full((100,), 10.1)
    rician = make_loss("rician", sigma=0.05)
    # differences of losses remove the constants: compare against predicted == measured
    delta = rician(predicted, measured) - rician(measured, measured)
    assert float(delta) == pytest.approx(0.5 * 0.1**2, rel=0.05)


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="loss"):
        make_loss("huber", sigma=0.1)
