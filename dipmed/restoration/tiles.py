"""Patches for fitting and tiles for rendering: memory set by the patch, not the volume.

A fit step sees one random patch (`random_patch`); the whole output is rendered in
overlapping tiles of the same size, blended by a Gaussian weight (MONAI's sliding-window
inference), so a network fitted on patches is applied to patches of the size it saw.
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

    Tiles stay on `device` (the fit's), the blended output on the volume's device (the
    host), so the GPU holds one tile at a time. `report(done, total)` counts the tiles.
    """
    if tuple(volume.shape[2:]) == tuple(size):
        return fn(volume.to(device)).to(volume.device)
    total, done = tile_count(volume.shape[2:], size), [0]

    def counted(tile):
        out = fn(tile)
        done[0] += 1
        if report is not None:
            report(done[0], total)
        return out

    from monai.inferers import sliding_window_inference  # slow to import: when needed

    return sliding_window_inference(
        volume,
        roi_size=tuple(size),
        sw_batch_size=1,
        predictor=counted,
        overlap=OVERLAP,
        mode="gaussian",
        padding_mode="replicate",
        sw_device=device,
        device=volume.device,
    )


def tile_count(shape, size) -> int:
    """Tiles `render` visits (MONAI's scan: a stride of size x (1 - OVERLAP))."""
    count = 1
    for n, s in zip(shape, size, strict=True):
        stride = max(1, int(s * (1 - OVERLAP)))
        count *= 1 if n <= s else -(-(n - s) // stride) + 1
    return count
