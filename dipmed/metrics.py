"""Full-reference image quality: PSNR, SSIM, NRMSE, and the data range they depend on.

Arrays in, floats out. PSNR and SSIM: higher is better. NRMSE: lower is better.
SSIM follows MONAI's SSIMMetric (Gaussian window, sigma 1.5, population covariance),
which needs at least 11 voxels along every axis.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

SSIM_MIN_SIZE = 11  # the Gaussian window (sigma 1.5, truncate 3.5) spans 11 voxels


def psnr(estimate: np.ndarray, reference: np.ndarray, data_range: float, mask=None) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(data_range^2 / MSE). Higher is better."""
    error = (np.asarray(estimate, np.float64) - np.asarray(reference, np.float64)) ** 2
    mse = float(error[mask].mean() if mask is not None else error.mean())
    return float(10 * np.log10(data_range**2 / max(mse, 1e-20)))


def ssim(estimate: np.ndarray, reference: np.ndarray, data_range: float, mask=None) -> float | None:
    """Mean SSIM (over `mask` when given); None when an axis is under 11 voxels."""
    return _ssim_means(estimate, reference, data_range, mask)[0 if mask is None else 1]


def _ssim_means(estimate, reference, data_range: float, mask) -> tuple:
    """SSIM over the volume and within `mask` (None without one), from one SSIM map."""
    if min(np.shape(reference)) < SSIM_MIN_SIZE:
        return None, None
    value, full = structural_similarity(
        np.asarray(estimate, np.float64),
        np.asarray(reference, np.float64),
        data_range=data_range,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    return float(value), (float(full[mask].mean()) if mask is not None else None)


def nrmse(estimate: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Root-mean-square error divided by the data range. Lower is better."""
    error = np.asarray(estimate, np.float64) - np.asarray(reference, np.float64)
    return float(np.sqrt(np.mean(error**2)) / data_range)


def data_range(reference: np.ndarray) -> tuple[float, str]:
    """The PSNR/SSIM data range and how it was chosen: the reference's max - min."""
    low, high = float(np.min(reference)), float(np.max(reference))
    return (high - low if high > low else 1.0), "reference max - min"


def full_reference(estimate: np.ndarray, reference: np.ndarray, rng: float, mask) -> dict:
    """PSNR, SSIM and NRMSE over the whole volume, and PSNR/SSIM within `mask`."""
    whole, foreground = _ssim_means(estimate, reference, rng, mask)
    return {
        "psnr": psnr(estimate, reference, rng),
        "ssim": whole,
        "nrmse": nrmse(estimate, reference, rng),
        "psnr_foreground": psnr(estimate, reference, rng, mask),
        "ssim_foreground": foreground,
    }
