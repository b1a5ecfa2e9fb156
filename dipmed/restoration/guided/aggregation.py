"""Aggregation of a collaborative stage: each cube's estimate goes back to its place,
weighted by its group's weight times a separable Kaiser window (BM4D's, beta 2: a cube's
centre counts more than its edges), and each voxel is the weighted mean of the cubes that
cover it."""

from __future__ import annotations

import math

import numpy as np
import torch


class Sums:
    """The weighted sum of the cubes' estimates at each voxel and the sum of their
    weights (aggregation); `result` divides them.

    A cube's weight is its group's times the Kaiser window (separable, `axis` on each
    axis), so the sum of weights at a voxel is the groups' weights summed at the cubes'
    corners, spread over the window (`spread`): the scatter takes one value per cube
    instead of one per voxel of it (it and the expanded weights' copy were a sixth of a
    Bayes pass)."""

    def __init__(self, shape, axis: torch.Tensor, device):
        size = math.prod(shape)
        self.shape, self.axis, self.window = tuple(shape), axis, outer(axis).reshape(-1)
        self.numerator = torch.zeros(size, device=device)
        self.corners = torch.zeros(size, device=device)

    def add(self, corners, flat, cubes, weights) -> None:
        """`corners` (B, K) the cubes' flat corners, `flat` (B, K, n^3) their voxels,
        `cubes` their estimates (scaled in place), `weights` (B,) per group or None (1)."""
        w = self.window
        cubes *= w if weights is None else weights[:, None, None] * w
        self.numerator.index_add_(0, flat.reshape(-1), cubes.reshape(-1))
        if weights is None:
            weights = torch.ones(1, device=cubes.device)
        per_cube = weights[:, None].expand(corners.shape).reshape(-1)
        self.corners.index_add_(0, corners.reshape(-1), per_cube)

    def result(self, fallback: torch.Tensor | None = None) -> torch.Tensor:
        """The weighted mean at each voxel (flat); where no cube was added, `fallback`'s
        value (flat, same size) or 0."""
        out = self.numerator
        total = spread(self.corners.reshape(self.shape), self.axis).reshape(-1)
        if fallback is not None:
            empty = total <= 0
            out[empty] = fallback[empty]
            total[empty] = 1.0
        out /= total.clamp_(min=1e-12)
        self.numerator = self.corners = None
        return out


def spread(corners: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """sum_o corners[v - o] w(o) over a cube's offsets o, w the separable window (`axis`
    on each axis): the sum of the weights of the cubes covering each voxel. Cubes lie
    inside the volume, so nothing spreads past its far faces. In place of `corners`
    (two volumes in use)."""
    a, b = corners, torch.empty_like(corners)
    for dim in range(3):
        b.zero_()
        size = a.shape[dim]
        for i, w in enumerate(axis.tolist()):
            b.narrow(dim, i, size - i).add_(a.narrow(dim, 0, size - i), alpha=w)
        a, b = b, a
    return a


def axis_window(n: int, beta: float) -> torch.Tensor:
    """The Kaiser window of the aggregation along one axis (all ones for beta 0)."""
    return torch.from_numpy(np.kaiser(n, beta)).float() if beta > 0 else torch.ones(n)


def outer(axis: torch.Tensor) -> torch.Tensor:
    """The separable 3D window of a cube from its window along one axis."""
    return torch.einsum("i,j,k->ijk", axis, axis, axis)
