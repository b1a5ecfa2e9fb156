"""The Deep Image Prior fit of a Volume, for any task: the measurement and its operator,
the anchor, the prior (2D slices or 3D), the stop rule, then `fit`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from dipmed.config import RestoreConfig
from dipmed.errors import InputError
from dipmed.restoration.dip.anchor import make_anchor
from dipmed.restoration.dip.fit import FitResult, fit
from dipmed.restoration.dip.losses import make_loss
from dipmed.restoration.dip.prior import DeepPrior
from dipmed.restoration.dip.stopping import DiscrepancyStop, NoStop, VarianceStop
from dipmed.restoration.measurement import measurement
from dipmed.restoration.operators import Downsample, Identity, Mask, apply
from dipmed.restoration.result import Restoration
from dipmed.restoration.runtime.context import RunContext
from dipmed.restoration.task import Normaliser, Task
from dipmed.volume import Volume, refine_affine


@dataclass(frozen=True)
class DipRun:
    """What the DIP fit did: its curves and stop (`fit`), in which mode, on which loss."""

    method: ClassVar[str] = "dip"
    fit: FitResult
    mode: str  # "2d" | "3d"
    slice_axis: int  # 2D mode: the axis the slices are taken along
    loss: str
    fit_sigma: float  # the noise std the stop rule used (image units)


def chosen(volume: Volume, task: Task, config: RestoreConfig) -> bool:
    return True  # every task; the last entry of each list in `restore.METHODS`


def run(volume: Volume, task: Task, config: RestoreConfig, context: RunContext) -> Restoration:
    """Fit the anchored deep prior to `volume` through the task's operator."""
    operator = make_operator(task, config)
    out_shape = task.output_shape(volume.shape)
    mode, axis = pick_mode(out_shape, task.factors, config, context.device)
    normaliser = Normaliser.of(volume.array)
    noise, measured = measurement(volume, task, config, context, normaliser)
    first = noise.first
    level = noise.fit_sigma / normaliser.scale
    context.stage("anchor")  # always computed: reports compare with it; plain DIP ignores it
    baseline = make_anchor(
        measured,
        task.kind,
        out_shape=out_shape,
        sigma_vox=config.anchor_sigma,
        noise_sigma=level,
        mask=task.mask,
        style="tv" if config.anchor == "none" else config.anchor,
        operator=operator,
        backproject=first is not None,
    )
    generator = torch.Generator().manual_seed(config.seed)
    prior = DeepPrior(
        out_shape,
        mode=mode,
        axis=axis,
        config=config.network,
        generator=generator,
        anchor=None if config.anchor == "none" else torch.from_numpy(baseline),
        output_scale=_correction_scale(baseline, measured, operator) if first else 1.0,
    ).to(context.device)
    result = _fit(prior, measured, operator, task, config, level, normaliser, generator, context)
    restored = normaliser.inverse(result.output)
    affine = refine_affine(volume.affine, task.factors) if task.kind == "sr" else volume.affine
    return Restoration(
        volume.with_array(restored, affine),
        normaliser.inverse(baseline),
        apply(operator, restored).astype(np.float32),
        normaliser,
        noise.sigma,
        noise.estimated,
        str(context.device),
        DipRun(result, mode, axis, config.loss, noise.fit_sigma),
        result.seconds + (first.seconds if first else 0.0),
        denoised_first=first,
    )


def _fit(prior, measured, operator, task, config, level, normaliser, generator, context):
    """The fit loop on the measurement (inpainting: its unknown voxels zeroed), resumable."""
    target = torch.from_numpy(measured)[None, None]
    if task.kind == "inpaint":
        target = operator.forward(target)  # unknown voxels carry no data: zero them
    resumed = context.checkpoint.get("fit")
    if resumed is not None:
        context.stage(f"fit: resuming from iteration {resumed['step']}")
    del resumed
    with context.checkpoint.deferring_stops():
        return fit(
            prior,
            target.to(context.device),
            operator,
            make_loss(config.loss, sigma=level),
            make_stopper(config, level, task),
            config.fit,
            generator=generator,
            progress=context.listener,
            monitor=_in_image_units(context.monitor, normaliser),
            checkpoint=context.checkpoint,
        )


def _correction_scale(anchor: np.ndarray, measured: np.ndarray, operator) -> float:
    """The size of what the prior must still correct: the anchor's rms misfit.

    Denoised slices leave a misfit of a few HU at a data range of thousands; an unscaled
    generator moves its output by far more than that in one Adam step (the loss rose 100x
    at the first step), so its output is scaled to the misfit it must remove.
    """
    return float(np.sqrt(np.mean((apply(operator, anchor) - measured) ** 2)))


def _in_image_units(monitor, normaliser: Normaliser):
    if monitor is None:
        return None
    return lambda iteration, output: monitor(
        iteration, normaliser.inverse(output[0, 0].float().cpu().numpy())
    )


def make_operator(task: Task, config: RestoreConfig):
    """The forward model A: identity (denoise), slice averaging (sr), a mask (inpaint)."""
    operators = {
        "denoise": lambda: Identity(),
        "sr": lambda: Downsample(task.factors, profile=config.slice_profile),
        "inpaint": lambda: Mask(torch.from_numpy((task.mask > 0).astype(np.float32))),
    }
    return operators[task.kind]()


def make_stopper(config: RestoreConfig, sigma_normalised: float, task: Task):
    if config.stop == "none":
        return NoStop()
    if config.stop == "variance":
        return VarianceStop(patience=config.stop_patience)
    variance = max(sigma_normalised, 1e-6) ** 2
    if task.mask is not None:
        variance *= float(np.mean(task.mask > 0))  # the misfit averages zeros over the hole
    return DiscrepancyStop(noise_variance=variance, tau=config.stop_tau)


def pick_mode(
    shape: tuple[int, ...], factors: tuple[int, ...], config: RestoreConfig, device: torch.device
) -> tuple[str, int]:
    """3D when it fits the device's budget, else 2D along an axis that is not downsampled."""
    axis = config.slice_axis if config.slice_axis >= 0 else _auto_axis(shape, factors)
    if factors[axis] != 1:
        raise InputError(
            f"slice_axis {axis} is downsampled (factor {factors[axis]}); "
            "2D mode needs slices along an axis with factor 1"
        )
    mode = config.mode
    if mode == "auto":
        mode = "3d" if np.prod(shape) <= _max_3d_voxels(device, config) else "2d"
    convolved = shape if mode == "3d" else [n for i, n in enumerate(shape) if i != axis]
    if min(convolved) < 1:
        raise InputError(f"volume of shape {shape} is empty")
    return mode, axis


def _auto_axis(shape: tuple[int, ...], factors: tuple[int, ...]) -> int:
    candidates = [i for i in range(3) if factors[i] == 1]
    if not candidates:
        raise InputError("every axis is downsampled; 2D mode needs one axis with factor 1")
    return min(candidates, key=lambda i: shape[i]) if max(factors) == 1 else candidates[0]


def _max_3d_voxels(device: torch.device, config: RestoreConfig) -> float:
    """Voxels a 3D fit may take: measured ~ features[0] * 60 bytes per voxel (fwd + bwd)."""
    per_voxel = config.network.features[0] * 60.0
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 0.6 * free / per_voxel
    return 128.0**3  # on a CPU, a bigger 3D fit is too slow to be useful
