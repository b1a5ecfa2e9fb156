"""Wiring: a Volume and a task -> normalised measurement, operator, prior, stop -> fit."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
import torch

from dipmed.config import RestoreConfig
from dipmed.errors import InputError
from dipmed.restoration.dip.anchor import make_anchor, project_onto
from dipmed.restoration.dip.fit import FitResult, fit
from dipmed.restoration.dip.losses import make_loss
from dipmed.restoration.dip.prior import DeepPrior
from dipmed.restoration.dip.stopping import DiscrepancyStop, NoStop, VarianceStop
from dipmed.restoration.guided.pipeline import guided_denoise
from dipmed.restoration.noise.estimate import estimate_noise
from dipmed.restoration.noise.model import NoiseModel, estimate_noise_model
from dipmed.restoration.operators import Downsample, Identity, Mask, apply
from dipmed.restoration.runtime import memory
from dipmed.restoration.runtime.checkpoint import Checkpoint
from dipmed.restoration.runtime.events import Report, Stage
from dipmed.restoration.sr import internal as internal_sr
from dipmed.volume import Volume, refine_affine

_NOISE_FLOOR = 1e-4  # of the intensity range: the smallest noise std guided denoising assumes
_RISK_FLOOR = 0.01  # sr after denoising: the denoised slices' error is taken >= 0.1 sigma
_SR_DIP_VOXELS = 128**3  # sr auto: a whole 3D DIP fit up to this output size, internal above
MIN_SIZE = 16  # BasicUNet needs >= 16 voxels along every axis it convolves


@dataclass(frozen=True)
class Task:
    """What to restore: "denoise", "sr" (with factors) or "inpaint" (with a 0/1 mask)."""

    kind: str
    factors: tuple[int, int, int] = (1, 1, 1)
    mask: np.ndarray | None = None

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The restored grid for an input of `shape` (finer by the factors for sr)."""
        return tuple(n * f for n, f in zip(shape, self.factors, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class Normaliser:
    """x_norm = (x - offset) / scale, with the 0.5 and 99.5 percentiles mapped to 0 and 1."""

    offset: float
    scale: float

    @classmethod
    def of(cls, array: np.ndarray) -> Normaliser:
        low, high = (float(v) for v in np.percentile(array, [0.5, 99.5]))
        return cls(low, high - low if high > low else 1.0)

    def forward(self, array: np.ndarray) -> np.ndarray:
        return ((array - self.offset) / self.scale).astype(np.float32)

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return (array * self.scale + self.offset).astype(np.float32)


@dataclass(frozen=True)
class Restoration:
    volume: Volume  # on the output grid, in the input's units
    baseline: np.ndarray  # the task's classical estimate (the anchor), output grid, input units
    fitted: np.ndarray  # A(restored): the restoration seen on the measurement grid
    normaliser: Normaliser
    fit: FitResult
    sigma: float  # noise std used (image units)
    sigma_estimated: bool
    mode: str
    slice_axis: int
    loss: str
    device: str
    method: str = "dip"  # "guided" | "dip"
    uncertainty: np.ndarray | None = None  # output grid, image units (guided only)
    details: dict | None = None  # guided: guide, chosen candidate, risks, noise model


def restore(
    volume: Volume,
    task: Task,
    config: RestoreConfig,
    *,
    progress: Report | None = None,
    monitor: Callable[[int, np.ndarray], None] | None = None,
    checkpoint: Checkpoint | None = None,
    candidates: bool = False,
) -> Restoration:
    """Restore `volume` by fitting a deep prior to it (see DESIGN: data flow).

    `monitor(iteration, output)` receives every epoch's output in image units (for
    benchmarks with a reference; it costs a device-to-host copy per epoch). `checkpoint`:
    guided denoising (and sr's denoising first) saves its stages there and resumes from it.
    `candidates`: guided denoising keeps every candidate's image in `details` (benchmarks).
    """
    device = pick_device(config.device)
    if task.kind == "denoise" and config.method == "guided":
        return _guided(
            volume, config, device, progress, checkpoint=checkpoint, candidates=candidates
        )
    operator = make_operator(task, config)
    out_shape = task.output_shape(volume.shape)
    mode, axis = pick_mode(out_shape, task.factors, config, device)
    # decided (and refused) before any work, the slices' denoising included
    internal = task.kind == "sr" and _use_internal(volume, task, config, out_shape)
    normaliser = Normaliser.of(volume.array)
    measured = normaliser.forward(volume.array)
    model = _sr_noise_model(volume, task, config, progress)
    # thick slices with measured noise: denoised on the acquired grid first (guided),
    # then the deep prior super-resolves them down to their remaining error
    first = _guided(volume, config, device, progress, model, checkpoint) if model else None
    if first is None:
        sigma, estimated = _sigma(measured, volume, task, config, normaliser)
        fit_sigma, details = sigma, None
    else:
        sigma, estimated = first.sigma, first.sigma_estimated
        risk = first.details["risks"][first.details["chosen"]]
        fit_sigma = sigma * float(np.sqrt(np.clip(risk, _RISK_FLOOR, 1.0)))
        measured = normaliser.forward(first.volume.array)
        details = {**first.details, "denoised_first": True, "fit_sigma": fit_sigma}
        details.pop("candidates")
    if internal:
        noise = (sigma, estimated, fit_sigma)
        return _internal(
            volume,
            task,
            config,
            measured,
            normaliser,
            noise,
            details,
            device,
            progress=progress,
            checkpoint=checkpoint,
            before_s=first and first.fit.seconds,
        )
    loss_name = config.loss
    generator = torch.Generator().manual_seed(config.seed)
    # the baseline is always computed (reports compare with it); plain DIP ignores it
    if progress:
        progress(Stage("anchor"))
    baseline = make_anchor(
        measured,
        task.kind,
        out_shape=out_shape,
        sigma_vox=config.anchor_sigma,
        noise_sigma=fit_sigma / normaliser.scale,
        mask=task.mask,
        style="tv" if config.anchor == "none" else config.anchor,
        operator=operator,
        backproject=details is not None,
    )
    anchor = None if config.anchor == "none" else torch.from_numpy(baseline)
    prior = DeepPrior(
        out_shape,
        mode=mode,
        axis=axis,
        config=config.network,
        generator=generator,
        anchor=anchor,
        output_scale=_correction_scale(baseline, measured, operator) if details else 1.0,
    ).to(device)
    target = torch.from_numpy(measured)[None, None]
    if task.kind == "inpaint":
        target = operator.forward(target)  # unknown voxels carry no data: zero them
    target = target.to(device)
    stopper = make_stopper(config, fit_sigma / normaliser.scale, task)
    resumed = checkpoint.get("fit") if checkpoint else None
    if resumed is not None and progress:
        progress(Stage(f"fit: resuming from iteration {resumed['iteration']}"))
    del resumed
    with checkpoint.deferring_stops() if checkpoint else nullcontext():
        result = fit(
            prior,
            target,
            operator,
            make_loss(loss_name, sigma=fit_sigma / normaliser.scale),
            stopper,
            config.fit,
            generator=generator,
            progress=progress,
            monitor=_in_image_units(monitor, normaliser),
            checkpoint=checkpoint,
        )
    if first is not None:  # the seconds of the denoising before the fit count too
        result = replace(result, seconds=result.seconds + first.fit.seconds)
    restored = normaliser.inverse(result.output)
    affine = refine_affine(volume.affine, task.factors) if task.kind == "sr" else volume.affine
    return Restoration(
        volume.with_array(restored, affine),
        normaliser.inverse(baseline),
        apply(operator, restored).astype(np.float32),
        normaliser,
        result,
        sigma,
        estimated,
        mode,
        axis,
        loss_name,
        str(device),
        details=details,
    )


def _use_internal(volume: Volume, task: Task, config: RestoreConfig, out_shape) -> bool:
    """Internal-learning sr: asked for, or (auto) where the output exceeds `_SR_DIP_VOXELS`:
    the same choice on every device, so a command gives the same method on a laptop and
    on a GPU node (on an H200 the whole 3D DIP fit of a 197x233x124 output had not
    finished in 170 s, where internal sr took 52 s; benchmarks/README.md)."""
    if config.sr_method == "dip":
        return False
    fits = internal_sr.applies(volume.shape, task.factors, volume.spacing)
    if config.sr_method == "internal" and not fits:
        raise InputError(
            "sr_method internal needs exactly one downsampled axis and slices of at least 32 "
            "voxels at the output's spacing; use sr_method: dip (--sr-method dip) for this volume"
        )
    return fits and (config.sr_method == "internal" or int(np.prod(out_shape)) > _SR_DIP_VOXELS)


def _internal(
    volume,
    task,
    config,
    measured,
    normaliser,
    noise,
    details,
    device,
    *,
    progress,
    checkpoint,
    before_s,
) -> Restoration:
    """sr by `internal_sr`, then back-projected onto the measured slices down to the
    discrepancy level (tau x the noise variance; noise-free slices: agreement)."""
    sigma, estimated, fit_sigma = noise
    operator = make_operator(task, config)
    start = time.perf_counter()
    saved = checkpoint.get("internal") if checkpoint else None
    if saved is not None and progress:
        progress(Stage(f"internal sr: resuming from step {saved['step']}"))
    del saved
    with checkpoint.deferring_stops() if checkpoint else nullcontext():
        learnt, losses = internal_sr.internal_sr(
            measured,
            task.factors,
            volume.spacing,
            config.internal,
            profile=config.slice_profile,
            network=config.network,
            seed=config.seed,
            device=device,
            progress=progress,
            checkpoint=checkpoint,
        )
    if progress:
        progress(Stage("back-projection onto the measured slices"))
    level = config.stop_tau * (fit_sigma / normaliser.scale) ** 2
    output = project_onto(learnt, measured, operator, level)
    misfit = float(np.mean((apply(operator, output) - measured) ** 2))
    steps = len(losses)
    result = FitResult(
        output=output,
        best_iteration=steps,
        iterations=steps,
        stop_reason="steps",
        seconds=time.perf_counter() - start + (before_s or 0.0),
        losses=losses,
        misfits=np.full(steps, misfit),
    )
    restored = normaliser.inverse(output)
    return Restoration(
        volume.with_array(restored, refine_affine(volume.affine, task.factors)),
        normaliser.inverse(internal_sr.upsample_cubic(measured, task.factors)),
        apply(operator, restored).astype(np.float32),
        normaliser,
        result,
        sigma,
        estimated,
        "2d",
        internal_sr.slice_axis(task.factors),
        "l1",
        str(device),
        "internal",
        details=details,
    )


def memory_plan(volume: Volume, task: Task, config: RestoreConfig) -> memory.Plan | None:
    """The memory plan of guided denoising (denoise, and sr's denoising first), or None for
    the plain DIP fit; InputError when the volume does not fit the budget."""
    if config.method != "guided" or task.kind == "inpaint":
        return None
    device = pick_device(config.device)
    settings = config.guided.resolved()
    fitted = settings.fits_members
    return memory.plan(volume.shape, settings.patch, config.memory_gb, device, fitted=fitted)


def _noise_model(volume: Volume, config: RestoreConfig, progress=None) -> NoiseModel:
    if progress:
        progress(Stage("noise level"))
    if config.noise_sigma > 0:
        return NoiseModel(config.noise_sigma, None, "given")
    return estimate_noise_model(volume.array, volume.meta.modality)


def _sr_noise_model(volume: Volume, task: Task, config: RestoreConfig, progress=None):
    """The noise model when sr should denoise first: guided, and the level measured in air
    or given. A wavelet level on a volume without air can be fine structure: on noise-free
    MNI crops (0.3 % read) denoising first cost 1.0-1.7 dB (benchmarks/README.md)."""
    if task.kind != "sr" or config.method != "guided":
        return None
    model = _noise_model(volume, config, progress)
    return model if model.source in ("air", "given") else None


def _guided(
    volume: Volume,
    config: RestoreConfig,
    device,
    progress,
    model=None,
    checkpoint=None,
    candidates=False,
) -> Restoration:
    """Denoising by `guided.guided_denoise` (the default method), as a Restoration."""
    modality = volume.meta.modality
    model = model or _noise_model(volume, config, progress)
    normaliser = Normaliser.of(volume.array)
    floor = _NOISE_FLOOR * normaliser.scale  # a noise-free input: almost nothing to remove
    if model.sigma < floor:
        model = NoiseModel(floor, None, model.source)
    settings = config.guided.resolved()
    # --max-iters caps the SURE steps of all members together
    members = max(settings.members, 1)
    iterations = min(settings.iterations, max(1, config.fit.max_iters // members))
    fitted = settings.fits_members
    need = memory.plan(volume.shape, settings.patch, config.memory_gb, device, fitted=fitted)
    patch = need.patch
    if checkpoint is not None:  # a resumed run keeps the patch it was fitting with
        patch = checkpoint.get("plan") or patch
        checkpoint.put("plan", patch)
    settings = replace(settings, iterations=iterations, patch=patch)
    if progress:
        progress(
            Stage(
                f"memory plan: {need.patch}^3 patches, about {need.predicted_gb:.1f} GB "
                f"of a {need.budget_gb:.1f} GB budget"
            )
        )
    with checkpoint.deferring_stops() if checkpoint else nullcontext():
        result = _run_guided(
            volume, model, modality, settings, config, device, progress, checkpoint, candidates
        )
    steps = len(result.losses)
    fitted = FitResult(
        output=normaliser.forward(result.estimate),
        best_iteration=max(steps, 1),
        iterations=max(steps, 1),
        stop_reason="risk",
        seconds=result.seconds,
        losses=result.losses,
        misfits=np.full(
            len(result.losses),
            float(np.mean((result.estimate - volume.array) ** 2)) / normaliser.scale**2,
        ),
    )
    details = {
        "guide": settings.guide,
        "chosen": result.chosen,
        "risks": result.risks,
        "held_out_losses": result.held_out_losses,  # the members' SURE on untrained voxels
        "members": settings.members if settings.iterations > 0 else 0,
        "quality": settings.quality,
        "stage_seconds": result.stage_seconds,
        "noise_source": model.source,
        "noise_correlated": not model.white,
        "candidates": result.candidates,  # image units (benchmarks score them)
    }
    return Restoration(
        volume.with_array(result.estimate, volume.affine),
        result.guide,
        result.estimate,
        normaliser,
        fitted,
        model.sigma,
        model.source != "given",
        "3d",
        -1,
        "sure",
        str(device),
        "guided",
        result.uncertainty,
        details,
    )


def _run_guided(
    volume, model, modality, settings, config, device, progress, checkpoint, candidates
):
    """guided_denoise, its result taken from or kept in the checkpoint (a stop requested
    during the last stages takes effect once the result is saved)."""
    saved = checkpoint.get("result") if checkpoint else None
    if saved is not None:
        if progress:
            progress(Stage("guided result: taken from the checkpoint"))
        return saved
    result = guided_denoise(
        np.asarray(volume.array, dtype=np.float32),  # no copy: Volume holds float32
        model,
        "MR" if modality == "MR" else "CT",
        settings,
        network=config.network,
        seed=config.seed,
        device=device,
        progress=progress,
        checkpoint=checkpoint,
        candidates=candidates,
    )
    if checkpoint is not None:
        checkpoint.keep("result", result, "after the denoising, which is saved")
    return result


def _correction_scale(anchor: np.ndarray, measured: np.ndarray, operator) -> float:
    """The size of what the prior must still correct: the anchor's rms misfit.

    Denoised slices leave a misfit of a few HU at a data range of thousands; an unscaled
    generator moves its output by far more than that in one Adam step (the CT sample's
    loss rose 100x at the first step and had not come back after 150), so its output is
    scaled to the misfit it must remove.
    """
    return float(np.sqrt(np.mean((apply(operator, anchor) - measured) ** 2)))


def _in_image_units(monitor, normaliser: Normaliser):
    if monitor is None:
        return None
    return lambda iteration, output: monitor(
        iteration, normaliser.inverse(output[0, 0].float().cpu().numpy())
    )


def make_operator(task: Task, config: RestoreConfig):
    if task.kind == "denoise":
        return Identity()
    if task.kind == "sr":
        return Downsample(task.factors, profile=config.slice_profile)
    if task.kind == "inpaint" and task.mask is not None:
        return Mask(torch.from_numpy((task.mask > 0).astype(np.float32)))
    raise ValueError(f"unknown task {task}")


def make_stopper(config: RestoreConfig, sigma_normalised: float, task: Task):
    if config.stop == "none":
        return NoStop()
    if config.stop == "variance":
        return VarianceStop(patience=config.stop_patience)
    variance = max(sigma_normalised, 1e-6) ** 2
    if task.kind == "inpaint" and task.mask is not None:
        variance *= float(np.mean(task.mask > 0))  # the misfit averages zeros over the hole
    return DiscrepancyStop(noise_variance=variance, tau=config.stop_tau)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto"
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        torch.backends.cudnn.benchmark = True
    return torch.device(name)


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


def _sigma(measured, volume, task, config, normaliser) -> tuple[float, bool]:
    if config.noise_sigma > 0:
        return config.noise_sigma, False
    sigma = estimate_noise(measured, volume.meta.modality) * normaliser.scale
    return max(sigma, 1e-6 * normaliser.scale), True
