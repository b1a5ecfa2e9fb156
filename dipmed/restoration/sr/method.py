"""Internal-learning sr of a Volume: chosen where it applies and the output is large,
then back-projected onto the measured slices down to the discrepancy level."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from dipmed.config import RestoreConfig
from dipmed.errors import InputError
from dipmed.restoration.dip.anchor import project_onto
from dipmed.restoration.measurement import measurement
from dipmed.restoration.operators import Downsample, apply
from dipmed.restoration.result import Restoration
from dipmed.restoration.runtime.context import RunContext
from dipmed.restoration.sr import internal
from dipmed.restoration.task import Normaliser, Task
from dipmed.volume import Volume, refine_affine

_SR_DIP_VOXELS = 128**3  # sr auto: a whole 3D DIP fit up to this output size, internal above


@dataclass(frozen=True)
class InternalRun:
    """What internal sr did: its training curve, and the back-projection's result."""

    method: ClassVar[str] = "internal"
    losses: np.ndarray = field(repr=False)  # L1 loss per training step (normalised units)
    slice_axis: int
    fit_sigma: float  # the level it back-projects to, as a noise std (image units)
    rms_misfit: float  # |A(x) - y| (RMS, image units) after the back-projection
    seconds: float  # training, rendering and back-projection

    @property
    def steps(self) -> int:
        return len(self.losses)


def chosen(volume: Volume, task: Task, config: RestoreConfig) -> bool:
    """Asked for, or (auto) where the output exceeds `_SR_DIP_VOXELS`: the same choice on
    every device, so a command gives the same method on a laptop and on a GPU node."""
    if config.sr_method == "dip":
        return False
    fits = internal.applies(volume.shape, task.factors, volume.spacing)
    if config.sr_method == "internal" and not fits:
        raise InputError(
            "sr_method internal needs exactly one downsampled axis and slices of at least 32 "
            "voxels at the output's spacing; use sr_method: dip (--sr-method dip) for this volume"
        )
    out_shape = task.output_shape(volume.shape)
    return fits and (config.sr_method == "internal" or int(np.prod(out_shape)) > _SR_DIP_VOXELS)


def run(volume: Volume, task: Task, config: RestoreConfig, context: RunContext) -> Restoration:
    """sr by `internal`, then back-projected onto the measured slices down to tau x the
    noise variance (noise-free slices: agreement)."""
    normaliser = Normaliser.of(volume.array)
    noise, measured = measurement(volume, task, config, context, normaliser)
    operator = Downsample(task.factors, profile=config.slice_profile)
    start = time.perf_counter()
    saved = context.checkpoint.get("internal")
    if saved is not None:
        context.stage(f"internal sr: resuming from step {saved['step']}")
    del saved
    with context.checkpoint.deferring_stops():
        learnt, losses = internal.internal_sr(
            measured,
            task.factors,
            volume.spacing,
            config.internal,
            profile=config.slice_profile,
            network=config.network,
            seed=config.seed,
            device=context.device,
            progress=context.listener,
            checkpoint=context.checkpoint,
        )
    context.stage("back-projection onto the measured slices")
    level = config.stop_tau * (noise.fit_sigma / normaliser.scale) ** 2
    output = project_onto(learnt, measured, operator, level)
    misfit = float(np.mean((apply(operator, output) - measured) ** 2))
    seconds = time.perf_counter() - start
    restored = normaliser.inverse(output)
    record = InternalRun(
        losses,
        internal.slice_axis(task.factors),
        noise.fit_sigma,
        float(np.sqrt(max(misfit, 0.0))) * normaliser.scale,
        seconds,
    )
    first = noise.first
    return Restoration(
        volume.with_array(restored, refine_affine(volume.affine, task.factors)),
        normaliser.inverse(internal.upsample_cubic(measured, task.factors)),
        apply(operator, restored).astype(np.float32),
        normaliser,
        noise.sigma,
        noise.estimated,
        str(context.device),
        record,
        seconds + (first.seconds if first else 0.0),
        denoised_first=first,
    )
