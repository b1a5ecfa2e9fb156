"""Noise-level estimation without ground truth, and simulated degradation."""

from __future__ import annotations

import numpy as np

_MAD_TO_STD = 0.6744897501960817  # median(|N(0, 1)|)
_CORNERS = [(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)]


def estimate_sigma(
    volume: np.ndarray, *, foreground_only: bool = False, region: np.ndarray | None = None
) -> float:
    """Noise std (image units) from the finest diagonal Haar detail: median(|d|) / 0.6745.

    The 3D detail d (`haar_detail`) has the noise's std for white noise and is almost
    blind to smooth anatomy (Donoho's MAD estimator, as in skimage.restoration.
    estimate_sigma). With `foreground_only`, only blocks above the volume's mean are used:
    for MR magnitude data this avoids the Rayleigh background. With `region` (boolean,
    same shape), only blocks wholly inside it are used.
    """
    x = _even(np.asarray(volume, dtype=np.float64))
    detail, mean = haar_detail(x)
    inside = np.ones(detail.shape, bool)
    if region is not None:
        r = _even(region)
        for i, j, k in _CORNERS:
            inside &= r[i::2, j::2, k::2]
    if foreground_only:
        inside &= mean > x.mean()
    return mad_sigma(detail[inside])


def haar_detail(volume: np.ndarray, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """(d, m) per 2x2x2 block of `volume` (odd ends dropped): the finest diagonal Haar
    detail d = (x (-1)^(i+j+k) summed over the block) / sqrt(8), which has the std of
    white noise, and the block's mean m. Both at an eighth of the volume's size."""
    x = _even(volume)
    detail = np.zeros([n // 2 for n in x.shape], dtype)
    mean = np.zeros_like(detail)
    for i, j, k in _CORNERS:
        block = x[i::2, j::2, k::2]
        detail += (-1) ** (i + j + k) * block
        mean += block / 8
    detail /= np.sqrt(8)
    return detail, mean


def mad_sigma(detail: np.ndarray) -> float:
    """The std of Gaussian values from their median absolute value (0 when empty)."""
    return float(np.median(np.abs(detail)) / _MAD_TO_STD) if detail.size else 0.0


def estimate_noise(volume: np.ndarray, modality: str) -> float:
    """`estimate_sigma` as dipmed applies it: MR magnitude data from the foreground only."""
    return estimate_sigma(volume, foreground_only=modality == "MR")


def _even(x: np.ndarray) -> np.ndarray:
    return x[: x.shape[0] // 2 * 2, : x.shape[1] // 2 * 2, : x.shape[2] // 2 * 2]


def add_noise(clean: np.ndarray, sigma: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian (additive) or Rician (magnitude of complex Gaussian) noise of std `sigma`."""
    if kind == "gaussian":
        return (clean + rng.normal(0.0, sigma, clean.shape)).astype(np.float32)
    if kind == "rician":
        real = clean + rng.normal(0.0, sigma, clean.shape)
        imaginary = rng.normal(0.0, sigma, clean.shape)
        return np.sqrt(real**2 + imaginary**2).astype(np.float32)
    raise ValueError(f"noise must be gaussian or rician, got {kind!r}")
