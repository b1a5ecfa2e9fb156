"""Super-resolution across thick slices by internal learning: the scan teaches itself.

A thick-slice scan is fine in-plane and coarse across slices. Its own slices, resampled
to the output's slice spacing, are degraded along one in-plane axis by the acquisition's
slice profile and interpolated back (cubic); a 2D MONAI BasicUNet (instance norm,
residual output) learns to undo that on random patches (L1 loss, Adam). Trained on both
in-plane axes, it is applied to the cubic upsampling of the volume, on the planes that
contain the slice axis (two orientations, averaged). No data but the scan, no pretrained
weights: internal learning as in ZSSR (Shocher, Cohen, Irani, CVPR 2018) and SMORE (Zhao
et al., 2020). The caller then projects the result back onto the measured slices.

The slices are resampled to the output's slice spacing first, so that the anatomy has
the same size in voxels along every axis the network sees (without it, it learns the
wrong scale: benchmarks/README.md, issue 11).

Arrays in, arrays out: `measured` (normalised units, the acquired grid), result on the
output grid. One axis may be downsampled; `applies` says whether a volume qualifies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import zoom

from dipmed.restoration.networks import NetworkConfig, build_generator, padded_size
from dipmed.restoration.operators import Downsample, apply
from dipmed.restoration.runtime.checkpoint import Checkpoint
from dipmed.restoration.runtime.context import NoCheckpoint
from dipmed.restoration.runtime.events import Listener, Progress, Stage
from dipmed.restoration.runtime.precision import step_if_finite
from dipmed.restoration.runtime.training import Resumable


@dataclass(frozen=True)
class InternalSettings:
    steps: int = 1500  # Adam steps
    batch: int = 8  # patches per step
    patch: int = 64  # side of the in-plane patches (clipped to the slices)
    learning_rate: float = 0.001
    planes_per_batch: int = 8  # planes rendered at once
    slices: int = 64  # acquired slices learnt from (evenly spaced; bounds memory and set-up)


def slice_axis(factors) -> int | None:
    """The one downsampled axis, or None (none, or several)."""
    down = [i for i, f in enumerate(factors) if f > 1]
    return down[0] if len(down) == 1 else None


def applies(measured_shape, factors, spacing, minimum: int = 32) -> bool:
    """True when one axis is downsampled and the slices, at the output's spacing, hold
    patches of at least `minimum` voxels along both in-plane axes."""
    axis = slice_axis(factors)
    if axis is None:
        return False
    return min(_plane_shape(measured_shape, factors, spacing, axis)) >= minimum


def internal_sr(
    measured: np.ndarray,
    factors,
    spacing,
    settings: InternalSettings,
    *,
    profile: str = "box",
    network: NetworkConfig,
    seed: int,
    device: torch.device,
    progress: Listener | None = None,
    checkpoint: Checkpoint | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(the upsampled volume, the L1 loss per step); `spacing` in mm of the acquired grid.

    With a `checkpoint`, the training state is saved under "internal" when due and
    resumed from there."""
    axis = slice_axis(factors)
    factor = int(factors[axis])
    planes = _training_planes(measured, factors, spacing, axis, settings.slices)
    pairs = [pair for plane in planes for pair in _pairs(plane, factor, profile)]
    torch.manual_seed(seed)
    net = build_generator(2, replace(network, input_channels=1, norm="instance")).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    saver = Resumable(
        checkpoint or NoCheckpoint(),
        "internal",
        "the internal super-resolution",
        net,
        optimizer,
        generator,
    )
    saved, first = saver.resume()
    losses = [] if saved is None else list(saved["losses"])
    start = time.perf_counter()
    # a multiple of 16 (the network's grid); `applies` keeps the slices >= 32
    side = max(16, min(settings.patch, *(min(a.shape) for a, _ in pairs)) // 16 * 16)
    for step in range(first, settings.steps + 1):
        inputs, targets = _batch(pairs, settings.batch, side, generator)
        inputs, targets = inputs.to(device), targets.to(device)
        loss = torch.mean(torch.abs(inputs + net(inputs) - targets))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        step_if_finite(optimizer)
        losses.append(float(loss.detach()))
        if progress:
            progress(Progress(step, settings.steps, losses[-1], time.perf_counter() - start))
        saver.save(step, losses=losses)
    if progress:
        progress(Stage("rendering the planes across the slices"))
    up = upsample_cubic(measured, factors)
    net.eval()
    out = np.zeros_like(up)
    others = [a for a in range(3) if a != axis]
    for other in others:
        out += _render(net, up, axis, other, settings.planes_per_batch, device)
    return (out / len(others)).astype(np.float32), np.asarray(losses)


def upsample_cubic(array: np.ndarray, factors) -> np.ndarray:
    """Cubic interpolation onto the output grid (voxels tiling the same extent)."""
    return zoom(array, factors, order=3, grid_mode=True, mode="nearest").astype(np.float32)


def _plane_shape(measured_shape, factors, spacing, axis):
    thin = spacing[axis] / factors[axis]
    return [round(measured_shape[a] * spacing[a] / thin) for a in range(3) if a != axis]


def _training_planes(measured, factors, spacing, axis, count: int) -> list[np.ndarray]:
    """Up to `count` acquired slices (evenly spaced), resampled in-plane to the output's
    slice spacing (the anatomy then has the same size in voxels along every axis the
    network sees)."""
    thin = spacing[axis] / factors[axis]
    scale = [spacing[a] / thin for a in range(3) if a != axis]
    slices = np.moveaxis(measured, axis, 0)
    slices = slices[np.unique(np.linspace(0, len(slices) - 1, count).round().astype(int))]
    return [
        zoom(s, scale, order=3, grid_mode=True, mode="nearest").astype(np.float32) for s in slices
    ]


def _pairs(plane: np.ndarray, factor: int, profile: str):
    """(degraded and interpolated back, original) along each in-plane axis, the degraded
    axis first."""
    out = []
    for view in (plane, plane.T):
        n = view.shape[0] // factor * factor
        if n < factor:
            continue
        target = np.ascontiguousarray(view[:n])
        thick = apply(Downsample((factor, 1, 1), profile=profile), target[..., None])[..., 0]
        back = upsample_cubic(thick.astype(np.float32), (factor, 1))
        out.append((back, target))
    return out


def _batch(pairs, count: int, side: int, generator: torch.Generator):
    inputs, targets = [], []
    for _ in range(count):
        low, high = pairs[int(torch.randint(len(pairs), (1,), generator=generator))]
        i = int(
            torch.randint(0, low.shape[0] - min(side, low.shape[0]) + 1, (1,), generator=generator)
        )
        j = int(
            torch.randint(0, low.shape[1] - min(side, low.shape[1]) + 1, (1,), generator=generator)
        )
        window = (slice(i, i + side), slice(j, j + side))
        inputs.append(_padded(low[window], side))
        targets.append(_padded(high[window], side))
    return torch.from_numpy(np.stack(inputs))[:, None], torch.from_numpy(np.stack(targets))[:, None]


def _padded(a: np.ndarray, side: int) -> np.ndarray:
    return np.pad(a, [(0, side - n) for n in a.shape], mode="edge")


def _render(net, up, axis, other, per_batch, device) -> np.ndarray:
    """The network on the planes spanned by (axis, other), the slice axis first."""
    rest = 3 - axis - other
    planes = np.ascontiguousarray(np.transpose(up, (rest, axis, other)))
    out = np.empty_like(planes)
    n0, n1 = planes.shape[1:]
    pad = [0, padded_size(n1) - n1, 0, padded_size(n0) - n0]
    with torch.no_grad():
        for start in range(0, planes.shape[0], per_batch):
            x = torch.from_numpy(planes[start : start + per_batch])[:, None].to(device)
            y = x + net(F.pad(x, pad, mode="replicate"))[..., :n0, :n1]
            out[start : start + per_batch] = y[:, 0].cpu().numpy()
    return np.transpose(out, np.argsort((rest, axis, other)))
