"""The noise model of a scan: its level and, where the scan shows it, its spatial correlation.

Real MR noise is correlated (parallel imaging, k-space filtering): a wavelet estimate at the
finest scale then sees only the high-frequency part of it and reads the level low. Where
the field of view has air at its border, that air is pure noise, so it gives both the
per-voxel level and the correlation without any anatomy in the way:

- MR magnitude: air is Rayleigh, E[m^2] = 2 sigma^2. For circular complex Gaussian noise
  with correlation rho(l), E[m^2(x) m^2(x + l)] = 4 sigma^4 (1 + |rho(l)|^2).
- CT: air is Gaussian about -1000 HU: the sample autocovariance.

A border slab counts as air when it looks like it (MR: mean / rms within the Rayleigh
value sqrt(pi) / 2 +- 4 %; CT: below -900 HU). Without air, the level comes from the finest
Haar detail (`noise.estimate_noise`) and the noise is taken as white.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dipmed.restoration.noise.estimate import estimate_noise

SLAB = 3  # thickness (voxels) of the border slabs examined for air
LAG = 2  # correlation estimated for lags up to this (voxels) along each axis
MIN_AIR_VOXELS = 2000
_DARK = 0.3  # MR air: 99th percentile below this fraction of the volume's 99.5th
_RAYLEIGH_RATIO = np.sqrt(np.pi) / 2  # mean / rms of a Rayleigh variable
_MIN_RHO = 0.1  # an axis whose lag-1 correlation is below this is taken as white: the
# whole head CT's own noise under 20 HU added read 0.02-0.03 on two axes (significant
# over its many air voxels, immaterial to the filter; the correlated path costs more)


@dataclass(frozen=True)
class NoiseModel:
    sigma: float  # per-voxel noise std, image units
    correlation: np.ndarray | None  # (2 LAG + 1)^3 autocorrelation, centre 1; None: white
    source: str  # "given" | "air" | "wavelet"
    stabilised_variance: float = 1.0  # the stabilised noise's variance as the guide's
    # residual reads it (1: `sigma` exact); the risk estimates use it, the filters `sigma`

    @property
    def white(self) -> bool:
        return self.correlation is None


def estimate_noise_model(array: np.ndarray, modality: str) -> NoiseModel:
    """The noise level (and correlation) of `array`; air at the border when there is some."""
    slabs = _air_slabs(array, modality)
    if sum(s.size for s in slabs) >= MIN_AIR_VOXELS:
        sigma = _air_sigma(slabs, modality)
        if sigma > 0:
            return NoiseModel(sigma, _air_correlation(slabs, modality), "air")
    return NoiseModel(estimate_noise(array, modality), None, "wavelet")


def _border_slabs(array: np.ndarray) -> list[np.ndarray]:
    out = []
    for axis in range(3):
        if array.shape[axis] > 4 * SLAB:
            out.append(np.take(array, range(SLAB), axis=axis))
            out.append(np.take(array, range(array.shape[axis] - SLAB, array.shape[axis]), axis))
    return out


def _air_slabs(array: np.ndarray, modality: str) -> list[np.ndarray]:
    """Border slabs that look like air and are as dark as the darkest of them.

    A slab of tissue can pass the Rayleigh ratio by chance (a brain edge did, and read the
    level 5.6x too high): air slabs must also be dark (99th percentile below a fifth of
    the volume's 99.5th) and share one level (rms within 20 % of the darkest air slab's).
    """
    if modality == "CT":
        return [s for s in _border_slabs(array) if _is_air(s, modality)]
    bright = float(np.percentile(array, 99.5))
    slabs = [
        s
        for s in _border_slabs(array)
        if _is_air(s, modality) and np.percentile(s, 99) < _DARK * bright
    ]
    if not slabs:
        return []
    rms = [float(np.sqrt(np.mean(s.astype(np.float64) ** 2))) for s in slabs]
    return [s for s, r in zip(slabs, rms, strict=True) if r <= 1.2 * min(rms)]


def _is_air(slab: np.ndarray, modality: str) -> bool:
    x = slab.astype(np.float64)
    if modality == "CT":  # every voxel of air, bar a few noise outliers, below -850 HU
        return bool(np.percentile(x, 99.9) < -850)
    rms = np.sqrt(np.mean(x**2))
    return bool(rms > 0 and abs(np.mean(x) / rms - _RAYLEIGH_RATIO) < 0.04 * _RAYLEIGH_RATIO)


def _air_sigma(slabs, modality: str) -> float:
    values = np.concatenate([s.ravel().astype(np.float64) for s in slabs])
    if modality == "CT":  # robust: 1.4826 x the median absolute deviation
        return float(1.4826 * np.median(np.abs(values - np.median(values))))
    return float(np.sqrt(np.mean(values**2) / 2))


def _air_correlation(slabs, modality: str) -> np.ndarray | None:
    """The noise correlation as a product of one correlation per axis (separable: k-space
    filtering and zero filling act axis by axis), each read at lags 1..LAG.

    An axis is correlated when its lag-1 value stands 3 standard errors of white noise's
    estimate (1 / sqrt(pairs)) above 0 and reaches `_MIN_RHO`; its further lags are then
    kept as read (MR: the square root of |rho|^2, read from the squared magnitude,
    clipped at 0), since zeroing a filter's small tail under-reads the low-frequency
    noise (the benchmark's correlated crop: the guide's true squared error 0.342 with the
    former 3D estimate floored at 0.2, 0.323 with its lag 2 zeroed, 0.279 kept;
    benchmarks/README.md)."""
    values = [_centred(slab, modality) for slab in slabs]
    norm = sum(float(np.sum(x * x)) for x in values) / sum(x.size for x in values)  # ~1
    axes = []
    for axis in range(3):
        line = np.zeros(2 * LAG + 1)
        line[LAG] = 1.0
        for d in range(1, LAG + 1):
            total, pairs = 0.0, 0
            for x in values:
                lag = [0, 0, 0]
                lag[axis] = d
                a, b = _overlap(x, lag)
                total, pairs = total + float(np.sum(a * b)), pairs + a.size
            r = max(min(total / max(pairs, 1) / norm, 1.0), 0.0)
            rho = np.sqrt(r) if modality != "CT" else r
            if d == 1 and not (r > 3.0 / np.sqrt(max(pairs, 1)) and rho >= _MIN_RHO):
                break  # white along this axis
            line[LAG - d] = line[LAG + d] = rho
        axes.append(line)
    rho = np.einsum("i,j,k->ijk", *axes)
    return None if np.count_nonzero(rho) == 1 else rho


def _centred(slab: np.ndarray, modality: str) -> np.ndarray:
    """Air values whose products estimate the correlation: MR x^2 / mean - 1 (its lag-l
    mean is |rho(l)|^2), CT the standardised values."""
    x = slab.astype(np.float64)
    return x**2 / np.mean(x**2) - 1 if modality != "CT" else (x - x.mean()) / x.std()


def _overlap(x: np.ndarray, lag) -> tuple[np.ndarray, np.ndarray]:
    a = x[tuple(slice(max(0, -d), x.shape[i] - max(0, d)) for i, d in enumerate(lag))]
    b = x[tuple(slice(max(0, d), x.shape[i] - max(0, -d)) for i, d in enumerate(lag))]
    return a, b


def cube_covariance(correlation: np.ndarray | None, n: int) -> np.ndarray:
    """Covariance (unit variance) between the voxels of an n^3 cube under `correlation`."""
    grid = np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), -1).reshape(-1, 3)
    if correlation is None:
        return np.eye(len(grid))
    lag = grid[:, None, :] - grid[None, :, :] + LAG
    inside = np.all((lag >= 0) & (lag <= 2 * LAG), axis=-1)
    lag = np.clip(lag, 0, 2 * LAG)
    return np.where(inside, correlation[lag[..., 0], lag[..., 1], lag[..., 2]], 0.0)
