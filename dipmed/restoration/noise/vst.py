"""Variance stabilisation of Rician magnitude data (after Foi, ISBI 2011), with dipmed's own tables.

If z ~ Rice(nu, sigma) then z / sigma ~ Rice(nu / sigma, 1): one map built for sigma = 1
serves every sigma.

1. Forward: u = f(z / sigma), f monotone, chosen numerically so that var(f(t) | nu) is as
   close to 1 as it can be for every nu (quadrature over the Rice density; least squares
   on a monotone piecewise-linear f). For large t, f(t) = sqrt(t^2 - 1/2) + a, joined
   continuously.
2. Denoise u as Gaussian noise of std 1.
3. Exact unbiased inverse: nu = sigma * E^-1(D), E(nu) = E[f(t) | nu] tabulated; a
   denoiser returns an estimate of E[f(t)], not of f(nu), so f^-1 would be biased at low
   SNR. Below E(0) the inverse is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_T_MAX = 12.0  # beyond this (in noise stds) the asymptotic map is used
_KNOTS = np.linspace(0.0, _T_MAX, 49)


@dataclass(frozen=True)
class RicianVST:
    """Forward and exact unbiased inverse for Rician data of noise std `sigma` (image units)."""

    sigma: float

    def forward(self, z: np.ndarray) -> np.ndarray:
        return _forward_map(np.asarray(z, np.float64) / self.sigma).astype(np.float32)

    def inverse(self, d: np.ndarray) -> np.ndarray:
        nu_grid, expectation = _tables()
        d = np.asarray(d, np.float64)
        nu = np.interp(d, expectation, nu_grid, left=0.0)
        a = _asymptotic_offset()
        high = d > expectation[-1]
        nu[high] = np.sqrt(np.maximum((d[high] - a) ** 2 + 0.5, 0.0))
        return (self.sigma * nu).astype(np.float32)

    def stabilised_std(self) -> float:
        return 1.0


def _forward_map(t: np.ndarray) -> np.ndarray:
    values = _optimised_values()
    inside = np.interp(np.clip(t, 0.0, _T_MAX), _KNOTS, values)
    outside = np.sqrt(np.maximum(t**2 - 0.5, 0.0)) + _asymptotic_offset()
    return np.where(t <= _T_MAX, inside, outside)


def _asymptotic_offset() -> float:
    return float(_optimised_values()[-1] - np.sqrt(_T_MAX**2 - 0.5))


@lru_cache(maxsize=1)
def _quadrature(nu_max: float = 10.0, count: int = 101):
    """Rice(nu, 1) densities on a t grid, rows normalised: (nu grid, t grid, weights)."""
    from scipy.stats import rice

    t = np.linspace(0.0, nu_max + 9.0, 2401)
    nu = np.linspace(0.0, nu_max, count)
    pdf = np.stack([rice.pdf(t, b) if b > 0 else t * np.exp(-(t**2) / 2) for b in nu])
    return nu, t, pdf / pdf.sum(axis=1, keepdims=True)


@lru_cache(maxsize=1)
def _optimised_values() -> np.ndarray:
    """f at the knots: least squares on (var(f | nu) - 1), f monotone (softplus steps)."""
    from scipy.optimize import minimize

    nu, t, weights = _quadrature()
    start = np.sqrt(np.maximum(_KNOTS**2 - 0.5, 0.0)) + 0.3
    steps0 = np.log(np.expm1(np.maximum(np.diff(start), 1e-3)))

    def values(params):
        return np.concatenate([[params[0]], params[0] + np.cumsum(np.logaddexp(0, params[1:]))])

    def objective(params):
        v = values(params)
        inside = np.interp(np.clip(t, 0, _T_MAX), _KNOTS, v)
        tail = np.sqrt(np.maximum(t**2 - 0.5, 0.0)) + v[-1] - np.sqrt(_T_MAX**2 - 0.5)
        ft = np.where(t <= _T_MAX, inside, tail)
        mean = weights @ ft
        var = weights @ ft**2 - mean**2
        return float(np.mean((var - 1.0) ** 2))

    result = minimize(objective, np.concatenate([[start[0]], steps0]), method="L-BFGS-B")
    return values(result.x)


@lru_cache(maxsize=1)
def _tables():
    """E[f(t) | nu] on a fine nu grid (sigma = 1), for the exact unbiased inverse."""
    from scipy.stats import rice

    nu = np.linspace(0.0, _T_MAX - 2.0, 501)
    t = np.linspace(0.0, _T_MAX + 9.0, 4001)
    pdf = np.stack([rice.pdf(t, b) if b > 0 else t * np.exp(-(t**2) / 2) for b in nu])
    pdf /= pdf.sum(axis=1, keepdims=True)
    expectation = pdf @ _forward_map(t)
    return nu, np.maximum.accumulate(expectation)


def stabilised_variance_profile(nu: np.ndarray) -> np.ndarray:
    """var(f(t) | nu) for sigma = 1 (tests and the benchmark check the stabilisation)."""
    from scipy.stats import rice

    t = np.linspace(0.0, float(np.max(nu)) + 10.0, 4001)
    out = []
    for b in np.atleast_1d(nu):
        p = rice.pdf(t, b) if b > 0 else t * np.exp(-(t**2) / 2)
        p = p / p.sum()
        f = _forward_map(t)
        out.append(float(p @ f**2 - (p @ f) ** 2))
    return np.asarray(out)
