"""The transforms of the collaborative filter: the orthonormal DCT of a cube, and a
cube's noise in it (the variance of each coefficient) and back in voxels."""

from __future__ import annotations

import math

import numpy as np
import torch


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix (rows are basis vectors)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.float()


def cube_transform(n: int) -> torch.Tensor:
    """The orthonormal 3D DCT of a flattened n^3 cube, as an (n^3, n^3) matrix."""
    d = dct_matrix(n)
    return torch.kron(torch.kron(d, d), d)


def coefficient_variances(covariance: np.ndarray, n: int) -> torch.Tensor:
    """Noise variance of each 3D-DCT coefficient of a cube, from the cube's noise covariance."""
    t = cube_transform(n).double()
    c = torch.from_numpy(np.asarray(covariance, dtype=np.float64))
    return torch.einsum("ij,jk,ik->i", t, c, t).float().clamp(min=1e-12)


def cube_noise(variances, n: int, device=None) -> torch.Tensor:
    """A cube's noise covariance in voxels, from the variance of each 3D-DCT coefficient
    (`variances`: a float for white noise, or per coefficient)."""
    t = cube_transform(n).to(device)
    var = variances_of(variances, n).to(device)
    return t.T @ (var[:, None] * t)


def variances_of(variances, n: int) -> torch.Tensor:
    """Per-coefficient noise variances (n^3,), from a float (white) or as given."""
    if isinstance(variances, torch.Tensor):
        return variances.float()
    return torch.full((n**3,), float(variances))
