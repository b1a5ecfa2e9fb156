"""How float intensities are stored on disk without loss beyond one stored unit."""

from __future__ import annotations

import numpy as np

INT16_MAX = 32767


def is_int16_exact(array: np.ndarray) -> bool:
    """True when every value is an integer in int16 range (then int16 is lossless)."""
    if array.size == 0 or not np.all(np.isfinite(array)):
        return False
    return bool(
        array.min() >= -INT16_MAX - 1
        and array.max() <= INT16_MAX
        and np.array_equal(array, np.round(array))
    )


def int16_scaling(array: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) with value = stored * slope + intercept, stored in int16.

    Integer data in int16 range keep slope 1, intercept 0 (exact). Non-negative data (a
    magnitude, an uncertainty) keep intercept 0 and span 0..32767: zeros stay exact and
    nothing reads back negative (an intercept written as a decimal string is rounded: a
    stored minimum read back as -9e-13). Anything else spans the int16 range linearly.
    The rounding error is at most half a stored unit.
    """
    if is_int16_exact(array):
        return 1.0, 0.0
    low, high = float(array.min()), float(array.max())
    if low >= 0.0:
        return (high / INT16_MAX if high > 0 else 1.0), 0.0
    slope = (high - low) / (2 * INT16_MAX) if high > low else 1.0
    return slope, low + INT16_MAX * slope


def to_int16(array: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Stored int16 values for `array` under (slope, intercept)."""
    stored = np.round((array.astype(np.float64) - intercept) / slope)
    return np.clip(stored, -INT16_MAX - 1, INT16_MAX).astype(np.int16)
