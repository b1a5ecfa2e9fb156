"""Noise-level estimation without ground truth, and simulated degradation."""

from __future__ import annotations

import numpy as np

_MAD_TO_STD = 0.6744897501960817  # median(|N(0, 1)|)


def estimate_sigma(
    volume: np.ndarray, *, foreground_only: bool = False, region: np.ndarray | None = None
) -> float:
    """Noise std (image units) from the finest diagonal Haar detail: median(|d|) / 0.6745.

    The 3D detail d = (x (-1)^(i+j+k) summed over 2x2x2 blocks) / sqrt(8) has the noise's
    std for white noise and is almost blind to smooth anatomy (Donoho's MAD estimator, as
    in skimage.restoration.estimate_sigma). With `foreground_only`, only blocks above the
    volume's mean are used: for MR magnitude data this avoids the Rayleigh background.
    With `region` (boolean, same shape), only blocks wholly inside it are used.
    """
    x = _even(np.asarray(volume, dtype=np.float64))
    inside = np.ones([n // 2 for n in x.shape], bool)
    detail = np.zeros(inside.shape)
    mean = np.zeros_like(detail)
    for i in (0, 1):
        for j in (0, 1):
            for k in (0, 1):
                block = x[i::2, j::2, k::2]
                detail += (-1) ** (i + j + k) * block
                mean += block / 8
                if region is not None:
                    inside &= _even(region)[i::2, j::2, k::2]
    detail /= np.sqrt(8)
    if foreground_only:
        inside &= mean > x.mean()
    detail = detail[inside]
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
