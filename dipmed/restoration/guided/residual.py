"""What grouping averages away, returned: the residual where it stands out of the noise.

The residual u - x smoothed by a 1.0-voxel Gaussian (a matched filter for a 3-voxel
blob) is tested against the smoothed noise's own std; where it exceeds 3.5 of them, and
one voxel around, the residual (lightly smoothed, 0.5 voxel) goes back into x. A small
lesion has no similar block to group with; this returns it and leaves noise alone: on
white noise it touches 0.3-0.4 % of the voxels and returns 0.2-0.3 % of the noise's energy
(benchmarks/README.md, issues 10 and 22).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter

from dipmed.restoration.noise.model import NoiseModel

_DETECT_VOX = 1.0  # Gaussian width (voxels) of the residual tested for structure
_DETECT_Z = 3.5  # structure: the smoothed residual above this many of its noise stds
_RETURN_VOX = 0.5  # Gaussian width (voxels) of the residual returned there


def significant_residual(residual: np.ndarray, model: NoiseModel) -> np.ndarray:
    """The residual where, smoothed, it stands out of the noise (stabilised units); else 0.

    Noise alone, smoothed by the Gaussian g, has std sqrt(sum_d rho(d) (g * g)(d)), with
    rho the noise correlation (a delta for white noise).
    """
    smooth = gaussian_filter(residual, _DETECT_VOX, mode="wrap")  # its std: the same everywhere
    detected = np.abs(smooth) > _DETECT_Z * _smoothed_noise_std(model)
    keep = binary_dilation(detected) if detected.any() else detected
    return np.where(keep, gaussian_filter(residual, _RETURN_VOX), 0.0).astype(np.float32)


def _smoothed_noise_std(model: NoiseModel) -> float:
    lag = 0 if model.white else model.correlation.shape[0] // 2
    size = 2 * (int(4 * _DETECT_VOX + 0.5) + lag + 1) + 1  # the whole kernel, and room
    delta = np.zeros((size,) * 3)
    delta[(size // 2,) * 3] = 1.0
    g = gaussian_filter(delta, _DETECT_VOX, mode="constant")
    if model.white:
        return float(np.sqrt(np.sum(g**2)))
    rho = model.correlation
    variance = 0.0
    for index in np.ndindex(rho.shape):
        shift = tuple(i - lag for i in index)
        moved = np.roll(g, shift, axis=(0, 1, 2))
        variance += rho[index] * float(np.sum(g * moved))
    return float(np.sqrt(max(variance, 0.0)))
