"""The measurement a fit works on: the input in normalised units and its noise; for thick
slices with measured noise, those slices denoised first (guided) and the error left in
them, which sr then fits down to (`sr.method`, `dip.method`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dipmed.config import RestoreConfig
from dipmed.restoration.guided import method as guided
from dipmed.restoration.guided.settings import GuidedResult
from dipmed.restoration.noise.estimate import estimate_noise
from dipmed.restoration.runtime.context import RunContext
from dipmed.restoration.task import Normaliser, Task
from dipmed.volume import Volume

_RISK_FLOOR = 0.01  # the denoised slices' error is taken >= 0.1 sigma


@dataclass(frozen=True)
class Noise:
    """The noise a fit (DIP, internal sr) works against: its std (image units), whether
    it was estimated, the level the fit stops at (`fit_sigma`: the noise, or the error
    left after denoising first), and that denoising when it ran."""

    sigma: float
    estimated: bool
    fit_sigma: float
    first: GuidedResult | None = None


def denoise_first(
    volume: Volume, task: Task, config: RestoreConfig, context: RunContext
) -> tuple[GuidedResult, float, float] | None:
    """(the guided result, its noise std, the std of the error left in it: from the
    returned candidate's risk, for MR over the voxels that are not air, where the slices
    carry what the fit must match) when sr should denoise first: method guided, and the
    noise level measured in air or given. A
    wavelet level on a volume without air can be fine structure, and denoising it first
    costs quality (benchmarks/README.md, issue 11); then None."""
    if task.kind != "sr" or config.method != "guided":
        return None
    model = guided.noise_model(volume, config, context)
    if model.source not in ("air", "given"):
        return None
    result, model = guided.denoise(volume, config, context, model)
    risk = result.risks[result.chosen]
    return result, model.sigma, model.sigma * float(np.sqrt(np.clip(risk, _RISK_FLOOR, 1.0)))


def measurement(
    volume: Volume, task: Task, config: RestoreConfig, context: RunContext, normaliser: Normaliser
) -> tuple[Noise, np.ndarray]:
    """(the noise, the measurement in normalised units: the slices denoised first where
    `denoise_first` runs, else the input)."""
    first = denoise_first(volume, task, config, context)
    if first is None:
        measured = normaliser.forward(volume.array)
        sigma, estimated = measured_sigma(measured, volume, config, normaliser)
        return Noise(sigma, estimated, sigma), measured
    result, sigma, fit_sigma = first
    noise = Noise(sigma, result.noise_source != "given", fit_sigma, result)
    return noise, normaliser.forward(result.estimate)


def measured_sigma(
    measured, volume: Volume, config: RestoreConfig, normaliser
) -> tuple[float, bool]:
    """The noise std in image units (given, or the wavelet estimate) and whether estimated."""
    if config.noise_sigma > 0:
        return config.noise_sigma, False
    sigma = estimate_noise(measured, volume.meta.modality) * normaliser.scale
    return max(sigma, 1e-6 * normaliser.scale), True
