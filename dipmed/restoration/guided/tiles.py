"""Patches for fitting and tiles for rendering: memory set by the patch, not the volume.

A fit step sees one random patch (`random_patch`); the whole output is rendered in
overlapping tiles of the same size, blended by a Gaussian weight, so a network fitted on
patches is applied to patches of the size it saw.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

OVERLAP = 0.25  # of a tile's side shared with its neighbour (Gaussian-blended)
RENDER_SCALE = 1.5  # render tiles are this much larger than training patches: less
# overlap to recompute, and still a size the network has seen the statistics of


def patch_shape(shape, side: int) -> tuple[int, ...]:
    """The patch for a volume of `shape`: cubes of `side`, clipped to the volume."""
    return tuple(min(side, n) for n in shape)


def render_side(patch: int) -> int:
    """The side of the tiles a network fitted on `patch`^3 patches is rendered in."""
    return -(-int(patch * RENDER_SCALE) // 16) * 16


def covers(shape, side: int) -> bool:
    """True when one patch holds the whole volume (no patches needed)."""
    return all(n <= side for n in shape)


def random_patch(shape, size, generator: torch.Generator) -> tuple[slice, ...]:
    """Slices of a patch of `size` at a uniformly random position inside `shape`."""
    pairs = zip(shape, size, strict=True)
    corners = [int(torch.randint(0, n - s + 1, (1,), generator=generator)) for n, s in pairs]
    return tuple(slice(c, c + s) for c, s in zip(corners, size, strict=True))


def render(
    fn: Callable[[torch.Tensor], torch.Tensor],
    volume: torch.Tensor,
    size,
    *,
    device=None,
    report: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """fn over the whole (1, 1, *shape) `volume` in overlapping tiles of `size`, blended.

    Each tile's output is weighted by a separable Gaussian (std an eighth of the tile, as
    MONAI's sliding window) and added into one output array; the tiles lie on a grid, so
    the sum of the weights is separable too and divides the output axis by axis: the
    whole volume costs one array (MONAI's sliding window held three). Tiles stay on
    `device` (the fit's), the output on the volume's device (the host), so the GPU holds
    one tile at a time. `report(done, total)` counts the tiles.
    """
    shape = tuple(volume.shape[2:])
    if shape == tuple(size):
        return fn(volume.to(device)).to(volume.device)
    starts = [_starts(n, s) for n, s in zip(shape, size, strict=True)]
    weights = [_weight(s) for s in size]
    out = torch.zeros(volume.shape, dtype=torch.float32, device=volume.device)
    total, done = tile_count(shape, size), 0
    blend = weights[0][:, None, None] * weights[1][None, :, None] * weights[2][None, None, :]
    blend = blend.to(device or volume.device)
    for a in starts[0]:
        for b in starts[1]:
            for c in starts[2]:
                where = (..., slice(a, a + size[0]), slice(b, b + size[1]), slice(c, c + size[2]))
                tile = fn(volume[where].to(device)).float()
                out[where] += (tile * blend).to(out.device)
                done += 1
                if report is not None:
                    report(done, total)
    for axis, (n, s, first, w) in enumerate(zip(shape, size, starts, weights, strict=True)):
        summed = torch.zeros(n)
        for p in first:
            summed[p : p + s] += w
        view = [1, 1, 1, 1, 1]
        view[2 + axis] = n
        out /= summed.reshape(view).to(out.device)
    return out


def _starts(n: int, s: int) -> list[int]:
    """Tile corners along an axis of n voxels: a stride of s x (1 - OVERLAP), the last
    tile ending at the border."""
    if n <= s:
        return [0]
    stride = max(1, int(s * (1 - OVERLAP)))
    first = list(range(0, n - s + 1, stride))
    return first if first[-1] == n - s else [*first, n - s]


def _weight(s: int) -> torch.Tensor:
    """A Gaussian over a tile's side (std s / 8, peak 1), floored so that every voxel counts."""
    i = torch.arange(s, dtype=torch.float32)
    return torch.exp(-0.5 * ((i - (s - 1) / 2) / (s / 8)) ** 2).clamp(min=1e-3)


def tile_count(shape, size) -> int:
    """Tiles `render` visits."""
    count = 1
    for n, s in zip(shape, size, strict=True):
        count *= len(_starts(n, s))
    return count
