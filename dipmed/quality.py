"""No-reference quality: foreground mask, SNR, FBER, and what the residual holds.

Arrays in, numbers out; used when there is no clean reference (the usual case).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from dipmed.restoration.noise.estimate import estimate_sigma

MIN_REGION_VOXELS = 8  # fewer voxels than this in a region: its statistics are None


def foreground_mask(array: np.ndarray) -> np.ndarray:
    """Head (body) mask: Otsu threshold of a lightly smoothed volume, holes filled,
    largest connected component kept. Falls back to "above the mean" when Otsu fails."""
    smooth = ndimage.gaussian_filter(np.asarray(array, np.float32), 1.0)
    try:
        mask = smooth > threshold_otsu(smooth)
    except ValueError:  # a constant volume
        mask = np.zeros(smooth.shape, bool)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, labels, range(1, count + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    if not mask.any() or mask.all():
        mask = smooth > smooth.mean()
    return mask


def snr(array: np.ndarray, mask: np.ndarray, sigma: float) -> float | None:
    """(mean foreground - mean background) / noise sigma. Higher is better."""
    if _small(mask) or _small(~mask) or sigma <= 0:
        return None
    return float((array[mask].mean() - array[~mask].mean()) / sigma)


def fber(array: np.ndarray, mask: np.ndarray) -> float | None:
    """Foreground-to-background energy ratio (MRIQC), energies taken about the background
    median so that CT air (-1000 HU) counts as zero. Higher is better."""
    if _small(mask) or _small(~mask):
        return None
    level = float(np.median(array[~mask]))
    background = float(np.mean((array[~mask] - level) ** 2))
    foreground = float(np.mean((array[mask] - level) ** 2))
    return foreground / background if background > 0 else None


def residual_stats(
    residual: np.ndarray, fitted: np.ndarray, region: np.ndarray, sigma: float
) -> dict:
    """What the residual (measurement - A(restored)) holds within `region`.

    - `std_over_sigma`: near 1 when the residual is the noise (below: noise kept;
      above: signal removed).
    - `correlation_with_restored`: Pearson r with A(restored); near 0 for pure noise, a
      clear positive value means anatomy went into the residual.
    - `whiteness`: wavelet (MAD) noise estimate of the residual / its std; near 1 for
      white noise, lower when the residual is smooth structure.
    """
    values, image = residual[region], fitted[region]
    std = float(values.std()) if values.size else 0.0
    correlation = None
    if values.size >= MIN_REGION_VOXELS and std > 0 and image.std() > 0:
        correlation = float(np.corrcoef(values, image)[0, 1])
    return {
        "mean": float(values.mean()) if values.size else None,
        "std": std,
        "std_over_sigma": std / sigma if sigma > 0 else None,
        "correlation_with_restored": correlation,
        "whiteness": _whiteness(residual, region, std),
    }


def _whiteness(residual: np.ndarray, region: np.ndarray, std: float) -> float | None:
    if std <= 0 or min(residual.shape) < 2:
        return None
    return float(estimate_sigma(residual, region=region) / std)


def _small(mask: np.ndarray) -> bool:
    return int(np.count_nonzero(mask)) < MIN_REGION_VOXELS
