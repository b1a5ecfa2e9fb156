"""Degradation operators A: the measurement is y = A(x) + noise.

Each operator is immutable and linear, with `forward` and its exact `adjoint`, acting on
tensors whose last three dimensions are the volume axes (X, Y, Z). Denoising is the
Identity; super-resolution a Downsample; inpainting a Mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Identity:
    """A(x) = x (denoising)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def measured_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return shape

    def take(self, axis: int, index: torch.Tensor) -> Identity:
        return self


@dataclass(frozen=True)
class Downsample:
    """Average over each block of `factors` voxels, weighted by a slice profile.

    `profile="box"` models a thick-slice acquisition: each measured voxel is the mean of the
    `factor` thin voxels it covers. `profile="gaussian"` uses a Gaussian of FWHM = factor
    centred on the block (zero beyond the volume's edge). The high-resolution size along
    each axis is the measured size times the factor.
    """

    factors: tuple[int, int, int]
    profile: str = "box"

    def __post_init__(self) -> None:
        if len(self.factors) != 3 or any(int(f) < 1 for f in self.factors):
            raise ValueError(f"factors must be three integers >= 1, got {self.factors}")
        if self.profile not in ("box", "gaussian"):
            raise ValueError(f"profile must be 'box' or 'gaussian', got {self.profile!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, factor in enumerate(self.factors):
            if factor > 1:
                x = _along(x, axis, lambda v, f=factor: F.conv1d(v, *self._conv(f, v)))
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        for axis, factor in enumerate(self.factors):
            if factor > 1:
                y = _along(y, axis, lambda v, f=factor: F.conv_transpose1d(v, *self._conv(f, v)))
        return y

    def measured_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return tuple(n // f for n, f in zip(shape, self.factors, strict=True))  # type: ignore[return-value]

    def take(self, axis: int, index: torch.Tensor) -> Downsample:
        if self.factors[axis] != 1:
            raise ValueError("slices must be taken along an axis that is not downsampled")
        return self

    def _conv(self, factor: int, like: torch.Tensor) -> tuple[torch.Tensor, None, int, int]:
        kernel = slice_profile(factor, self.profile).to(like)
        return kernel.view(1, 1, -1), None, factor, (kernel.numel() - factor) // 2


@dataclass(frozen=True, eq=False)
class Mask:
    """A(x) = m * x with m = 1 where the voxel is known (inpainting). Self-adjoint."""

    mask: torch.Tensor  # (X, Y, Z) of 0/1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask.to(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.mask.to(y)

    def measured_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return shape

    def take(self, axis: int, index: torch.Tensor) -> Mask:
        return Mask(self.mask.index_select(axis, index.to(self.mask.device)))


def apply(operator, array: np.ndarray) -> np.ndarray:
    """A(array) for one volume (X, Y, Z) given as numpy, computed in float64."""
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))[None, None]
    return operator.forward(x)[0, 0].numpy()


def slice_profile(factor: int, profile: str) -> torch.Tensor:
    """Weights (sum 1) of the thin voxels contributing to one thick voxel.

    The length has the parity of `factor`, so the kernel is centred on the block
    [j * factor, (j + 1) * factor) that measured voxel j covers.
    """
    if profile == "box":
        return torch.full((factor,), 1.0 / factor, dtype=torch.float64)
    sigma = factor / (2.0 * math.sqrt(2.0 * math.log(2.0)))  # FWHM = factor
    half = math.ceil(3 * sigma)
    length = factor + 2 * half
    offsets = torch.arange(length, dtype=torch.float64) - (length - 1) / 2.0
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _along(x: torch.Tensor, axis: int, op) -> torch.Tensor:
    """Apply a (N, 1, L) -> (N, 1, L') 1D operation along volume axis `axis` (0..2)."""
    dim = x.ndim - 3 + axis
    moved = x.movedim(dim, -1)
    flat = moved.reshape(-1, 1, moved.shape[-1])
    result = op(flat)
    return result.reshape(*moved.shape[:-1], result.shape[-1]).movedim(-1, dim)
