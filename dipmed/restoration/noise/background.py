"""Background of MR magnitude images: voxels whose data are consistent with no signal.

Where the true signal is 0 (air), magnitude data are Rayleigh: mean sigma sqrt(pi / 2),
std sigma sqrt(2 - pi / 2). A denoised estimate there is a small positive value whose
error the exact unbiased inverse of the stabilising transform magnifies (its slope is
steep near 0), and BM4D, whose own noise estimate runs high there, is not left with it.
A test per voxel: where the mean of the noisy magnitude over the 3^3 neighbourhood lies
within `Z` of its standard errors of the Rayleigh mean, and the estimate itself is below
`LOW` sigma, the estimate is 0 (measured on an MNI crop at the edge of the head:
benchmarks/README.md, issue 11).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

WINDOW = 3  # side of the neighbourhood whose mean is tested
Z = 3.0  # standard errors of the Rayleigh mean allowed
LOW = 2.0  # the estimate must be below this many sigma to be set to 0


def no_signal(noisy: np.ndarray, estimate: np.ndarray, sigma: float) -> np.ndarray:
    """True where the data are consistent with a signal of 0 and the estimate is low."""
    mean = uniform_filter(np.asarray(noisy, np.float32), WINDOW, mode="reflect")
    spread = np.sqrt(2.0 - np.pi / 2.0) / np.sqrt(WINDOW**3)
    limit = sigma * (np.sqrt(np.pi / 2.0) + Z * spread)
    return (mean < limit) & (estimate < LOW * sigma)
