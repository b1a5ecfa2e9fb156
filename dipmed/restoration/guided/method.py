"""Guided denoising of a Volume: the noise model, the memory plan, then `pipeline`, its
result kept in the checkpoint."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dipmed.config import RestoreConfig
from dipmed.restoration.guided.pipeline import guided_denoise
from dipmed.restoration.guided.settings import GuidedResult
from dipmed.restoration.noise.model import NoiseModel, estimate_noise_model
from dipmed.restoration.result import Restoration
from dipmed.restoration.runtime import memory
from dipmed.restoration.runtime.context import RunContext, pick_device
from dipmed.restoration.task import Normaliser, Task
from dipmed.volume import Volume

_NOISE_FLOOR = 1e-4  # of the intensity range: the smallest noise std guided denoising assumes


def chosen(volume: Volume, task: Task, config: RestoreConfig) -> bool:
    return config.method == "guided"


def run(volume: Volume, task: Task, config: RestoreConfig, context: RunContext) -> Restoration:
    """Denoise `volume` by guided denoising; the guide is the baseline it is compared with."""
    result, model = denoise(volume, config, context)
    return Restoration(
        volume.with_array(result.estimate, volume.affine),
        result.guide,
        result.estimate,
        Normaliser.of(volume.array),
        model.sigma,
        model.source != "given",
        str(context.device),
        result,
        result.seconds,
        uncertainty=result.uncertainty,
    )


def denoise(
    volume: Volume, config: RestoreConfig, context: RunContext, model: NoiseModel | None = None
) -> tuple[GuidedResult, NoiseModel]:
    """(the guided result, the noise model it used: `model`, or the volume's own)."""
    model = model or noise_model(volume, config, context)
    floor = _NOISE_FLOOR * Normaliser.of(volume.array).scale  # noise-free: almost nothing
    if model.sigma < floor:
        model = NoiseModel(floor, None, model.source)
    settings = config.guided.resolved(white=model.white)
    need = _plan(volume.shape, settings, config, context.device)
    patch = context.checkpoint.get("plan") or need.patch  # a resumed run keeps its patch
    context.checkpoint.put("plan", patch)
    settings = replace(settings, patch=patch)
    context.stage(
        f"memory plan: {need.patch}^3 patches, about {need.predicted_gb:.1f} GB "
        f"of a {need.budget_gb:.1f} GB budget"
    )
    with context.checkpoint.deferring_stops():
        saved = context.checkpoint.get("result")
        if saved is not None:
            context.stage("guided result: taken from the checkpoint")
            return saved, model
        modality = "MR" if volume.meta.modality == "MR" else "CT"
        noisy = np.asarray(volume.array, dtype=np.float32)  # no copy: Volume holds float32
        result = guided_denoise(
            noisy,
            model,
            modality,
            settings,
            network=config.network,
            seed=config.seed,
            context=context,
        )
        # a stop requested during the last stages takes effect once the result is saved
        context.checkpoint.keep("result", result, "after the denoising, which is saved")
    return result, model


def noise_model(volume: Volume, config: RestoreConfig, context: RunContext) -> NoiseModel:
    """The noise model: given (config noise_sigma), or estimated from the volume."""
    context.stage("noise level")
    if config.noise_sigma > 0:
        return NoiseModel(config.noise_sigma, None, "given")
    return estimate_noise_model(volume.array, volume.meta.modality)


def memory_plan(volume: Volume, task: Task, config: RestoreConfig) -> memory.Plan | None:
    """The memory plan of guided denoising (denoise, and sr's denoising first), or None
    where no guided denoising runs; InputError when the volume does not fit the budget."""
    if config.method != "guided" or task.kind == "inpaint":
        return None
    return _plan(volume.shape, config.guided.resolved(), config, pick_device(config.device))


def _plan(shape, settings, config: RestoreConfig, device) -> memory.Plan:
    """`memory.plan` for resolved guided `settings`: members fitted or not, and the
    recorrupted member's pairs (`GuidedSettings.pairs`; a SURE member holds none)."""
    recorrupted = settings.fits_members and settings.member == "recorrupted"
    pairs = settings.pairs if recorrupted else 0
    return memory.plan(
        shape, settings.patch, config.memory_gb, device, fitted=settings.fits_members, pairs=pairs
    )
