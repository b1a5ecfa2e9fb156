"""Full-reference metrics for the benchmark (higher is better for both)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def psnr(estimate: np.ndarray, clean: np.ndarray, data_range: float, mask=None) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(data_range^2 / MSE)."""
    error = (np.asarray(estimate, np.float64) - clean) ** 2
    mse = float(error[mask].mean() if mask is not None else error.mean())
    return float(10 * np.log10(data_range**2 / max(mse, 1e-20)))


def ssim(estimate: np.ndarray, clean: np.ndarray, data_range: float, mask=None) -> float:
    """SSIM with Gaussian weights (sigma 1.5), as MONAI's SSIMMetric computes it."""
    value, full = structural_similarity(
        np.asarray(estimate, np.float64),
        np.asarray(clean, np.float64),
        data_range=data_range,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    return float(full[mask].mean() if mask is not None else value)
