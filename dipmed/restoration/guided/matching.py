"""Block matching for the collaborative filter: for reference cubes on a grid, the most
similar cubes within a search window (squared distance on a matching image), on a
volume padded by one cube.

Distances are computed at the reference corners only, as strided box sums of the
squared difference per search offset (on a small slab, several offsets along the last
axis at once), axis by axis; candidates are pooled over a few planes of offsets and cut
to the k nearest unsorted, then sorted once at the end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SLAB_VOXELS = 500_000  # voxels per slab of reference cubes matched together (its pool: ~0.2 GB)
_POOL_PLANES = 3  # planes of search offsets matched between two cuts to the k nearest
_SMALL_SLAB = 150_000  # voxels: a slab this small takes every offset along the last axis
# at once (per offset, dispatch dominated: a 48^2 x 32 crop 25 % faster); a larger one
# takes them one at a time (batches were 5-40 % slower from 240k voxels up)


def pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect-pad by n - 1 so that border voxels sit in as many cubes as inner ones."""
    p = n - 1
    return F.pad(x[None, None], (p, p, p, p, p, p), mode="replicate")[0, 0]


def unpad(x: torch.Tensor, shape) -> torch.Tensor:
    p = (x.shape[0] - shape[0]) // 2
    return x[p : p + shape[0], p : p + shape[1], p : p + shape[2]]


def cube_offsets(shape, n: int) -> torch.Tensor:
    """Flat offsets of a cube's voxels from its corner, C order."""
    _, sy, sz = shape
    o = torch.arange(n)
    return ((o[:, None, None] * sy + o[None, :, None]) * sz + o[None, None, :]).reshape(-1)


def reference_slabs(shape, n: int, step: int):
    """Corners of reference cubes (every `step` voxels, the last corner always included),
    in slabs along the first axis of about SLAB_VOXELS voxels each: per slab, the corners'
    ticks along each axis (their grid is every combination, C order)."""
    axes = []
    for size in shape:
        last = size - n
        ticks = list(range(0, last + 1, step))
        if ticks[-1] != last:
            ticks.append(last)
        axes.append(torch.tensor(ticks))
    rows = max(1, SLAB_VOXELS // (shape[1] * shape[2] * step))
    for first in range(0, len(axes[0]), rows):
        yield axes[0][first : first + rows], axes[1], axes[2]


def match(x: torch.Tensor, ticks, n: int, radius: int, k: int) -> torch.Tensor:
    """For the reference corners of one slab (the grid of `ticks`, C order), the flat
    corners (voxel index of the cube's first voxel) of their k nearest cubes within the
    search window, nearest first.

    Distances are computed at the reference corners only (strided box sums of views),
    against the slab padded by the search radius with inf (a cube leaving the volume is
    never nearer); candidates are kept in a pool of `_POOL_PLANES` planes of offsets and
    cut to the k nearest, unsorted, when it is full. (Whole-slab box sums, shifted copies
    and a sorted cut per plane were half of the filter's time: 2.6x slower.)"""
    s0, sy, sz = x.shape
    tx, ty, tz = (t.to(x.device) for t in ticks)
    x0, r = int(tx[0]), radius
    rows = int(tx[-1]) - x0 + n
    a = x[x0 : x0 + rows]
    lo, hi = max(x0 - r, 0), min(x0 + rows + r, s0)
    padded = torch.full((rows + 2 * r, sy + 2 * r, sz + 2 * r), float("inf"), device=x.device)
    padded[lo - x0 + r : hi - x0 + r, r : r + sy, r : r + sz] = x[lo:hi]
    local = (tx - x0, ty, tz)
    refs = len(tx) * len(ty) * len(tz)
    side = 2 * r + 1
    plane = side * side  # offsets per value of the first axis' offset
    pool = torch.empty((k + _POOL_PLANES * plane, refs), device=x.device)
    ids = torch.empty((k + _POOL_PLANES * plane, refs), dtype=torch.int32, device=x.device)
    pool[:k] = float("inf")
    ids[:k] = 0
    filled = k
    batch = side if a.numel() <= _SMALL_SLAB else 1  # offsets along the last axis at once
    axes = (0, 1, 2) if batch == 1 else (1, 2, 3)  # the cube's axes in a batch's differences
    first = torch.arange(side, dtype=torch.int32, device=x.device)
    for dx in range(-r, r + 1):
        for dy in range(-r, r + 1):
            moved = padded[r + dx : r + dx + rows, r + dy : r + dy + sy].unfold(2, sz, 1)
            moved = moved.permute(2, 0, 1, 3)  # (dz, rows, sy, sz): views
            for z0 in range(0, side, batch):
                d = a - (moved[z0] if batch == 1 else moved[z0 : z0 + batch])
                sums = strided_box_sum(d.square_(), local, n, axes=axes)
                pool[filled + z0 : filled + z0 + batch] = sums.reshape(-1, refs)
            ids[filled : filled + side] = (((dx + r) * side + dy + r) * side + first)[:, None]
            if dx == dy == 0:  # the reference itself: first in its group, even among
                pool[filled + r] = -1.0  # ties (a flat region), so every voxel is covered
            filled += side
        if filled == len(pool) or dx == r:
            best, order = torch.topk(pool[:filled], k, dim=0, largest=False, sorted=False)
            ids[:k] = torch.gather(ids[:filled], 0, order)
            pool[:k] = best
            filled = k
    _, order = torch.sort(pool[:k], dim=0)  # nearest first: stage 1's DCT across the group
    chosen = torch.gather(ids[:k], 0, order).long().T  # (R, k) offset ids
    grid = torch.meshgrid(tx, ty, tz, indexing="ij")
    corner = []
    for axis, (g, limit) in enumerate(zip(grid, (s0 - n, sy - n, sz - n), strict=True)):
        offset = chosen // side ** (2 - axis) % side - r
        corner.append((g.reshape(-1, 1) + offset).clamp(0, limit))
    return (corner[0] * sy + corner[1]) * sz + corner[2]


def strided_box_sum(x: torch.Tensor, ticks, n: int, axes=(0, 1, 2)) -> torch.Tensor:
    """Sum over the n^3 cube at each corner of the grid of `ticks` (one tensor per axis
    of `axes`, the cube's axes in x: every `step` voxels from 0, then perhaps the last
    corner): separable, each axis summed at its ticks only (strided views), so later axes
    work on fewer voxels."""
    for axis, t in zip(axes, ticks, strict=True):
        count = len(t)
        step = int(t[1] - t[0]) if count > 1 else 1
        regular = count if int(t[-1]) == step * (count - 1) else count - 1
        index = [slice(None)] * x.dim()
        total = None
        for j in range(n):
            index[axis] = slice(j, j + step * (regular - 1) + 1, step)
            view = x[tuple(index)]
            total = view.clone() if total is None else total.add_(view)
        if regular < count:  # the last corner, off the step
            last = x.narrow(axis, int(t[-1]), n).sum(dim=axis, keepdim=True)
            total = torch.cat([total, last], axis)
        x = total
    return x


def reach(where: torch.Tensor, n: int, radius: int) -> torch.Tensor:
    """Per cube corner of the padded volume: whether a voxel of `where` (a 0/1 volume)
    lies within `radius` of that cube, so that a group matched from it can cover one."""
    w = pad(where.float(), n)[None, None]
    k = n + 2 * radius  # separable: the k^3 window at once took 30 s on the whole MNI
    for size in ((k, 1, 1), (1, k, 1), (1, 1, k)):
        w = F.max_pool3d(w, size, stride=1, padding=tuple(radius * (s > 1) for s in size))
    return w[0, 0] > 0


def match_reaching(x, ticks, n: int, radius: int, k: int, reaching) -> torch.Tensor:
    """`match`'s groups (R, K) of the reference cubes `reaching` (`reach`) keeps only
    (None: all; a slab with none is not matched)."""
    if reaching is None:
        return match(x, ticks, n, radius, k)
    tx, ty, tz = (t.to(reaching.device) for t in ticks)
    keep = reaching[tx][:, ty][:, :, tz].reshape(-1)
    if not bool(keep.any()):
        return torch.empty((0, k), dtype=torch.long, device=x.device)
    return match(x, ticks, n, radius, k)[keep]
