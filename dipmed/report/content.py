"""The report's data (report.json): metrics for input, baseline and restoration, the
residual, the fit, and provenance. Arrays in, plain data out."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dipmed import metrics, quality
from dipmed.config import RestoreConfig
from dipmed.io import output_format
from dipmed.report.provenance import peak_host_memory_bytes, provenance
from dipmed.restoration.guided.collaborative import CollaborativeSettings
from dipmed.restoration.guided.guide import guide_pilots_final, pairs_guide
from dipmed.restoration.guided.risk import DARK_SIGMAS
from dipmed.restoration.noise.estimate import estimate_noise
from dipmed.restoration.result import Restoration
from dipmed.restoration.task import Task
from dipmed.volume import Volume

SCHEMA_VERSION = 1
CURVE_POINTS = 400  # the loss curve in report.json is decimated to about this many points


@dataclass(frozen=True)
class Run:
    """Everything a report describes: what went in, what ran, what came out."""

    command: str  # denoise | sr | inpaint
    input_path: Path
    output_path: Path
    volume: Volume  # the input as read
    task: Task
    config: RestoreConfig
    restoration: Restoration
    command_line: list[str]
    reference: Volume | None = None
    reference_path: Path | None = None


def build_report(run: Run) -> dict:
    """report.json's content (identifiers not yet redacted: see privacy.redact)."""
    r = run.restoration
    return {
        "dipmed_report": SCHEMA_VERSION,
        "task": run.command,
        "input": _describe(run.volume, run.input_path)
        | {"warnings": list(run.volume.meta.warnings)},  # what reading it had to assume
        "output": _describe(r.volume, run.output_path) | {"format": output_format(run.output_path)},
        "reference": None
        if run.reference is None
        else _describe(run.reference, run.reference_path),
        "noise": {
            "sigma": r.sigma,
            "estimated": r.sigma_estimated,
            "method": _noise_method(r),
            "units": run.volume.meta.units or "image units",
        },
        "metrics": _metrics(run),
        "fit": _fit(run),
        "provenance": provenance(run.config, run.command_line, run.input_path),
    }


def _noise_method(r) -> str:
    """ "air" (guided: the border of the field of view), wavelet MAD, or given."""
    if not r.sigma_estimated:
        return "given (config noise_sigma)"
    guided = r.run if r.method == "guided" else r.denoised_first
    if guided is not None and guided.noise_source == "air":
        return "air"
    return "wavelet (Haar) median absolute deviation"


def _describe(volume: Volume, path: Path | None) -> dict:
    return {
        "name": path.name if path else None,
        "format": volume.meta.source_format or "nifti",
        "modality": volume.meta.modality,
        "units": volume.meta.units,
        "shape": list(volume.shape),
        "spacing_mm": [round(s, 6) for s in volume.spacing],
        "orientation": volume.orientation,
    }


def _metrics(run: Run) -> dict:
    r, task = run.restoration, run.task
    measured, restored = run.volume.array, r.volume.array
    mask_source = run.reference.array if run.reference is not None else r.baseline
    mask_out = quality.foreground_mask(mask_source)
    same_grid = measured.shape == restored.shape
    mask_in = mask_out if same_grid else quality.foreground_mask(measured)
    estimates = {
        "input": (measured, mask_in),
        "baseline": (r.baseline, mask_out),
        "restored": (restored, mask_out),
    }
    out = {
        "foreground_mask": "Otsu threshold of the "
        + ("reference" if run.reference is not None else "baseline")
        + " (Gaussian 1 voxel), largest component, holes filled",
        "foreground_fraction": float(mask_out.mean()),
        "data_range": None,
        "data_range_method": None,
    }
    modality = run.volume.meta.modality
    for name, (array, mask) in estimates.items():
        out[name] = _no_reference(array, mask, modality)
    if run.reference is not None:
        _add_full_reference(out, run, estimates, mask_out)
    region = mask_in if task.mask is None else mask_in & (task.mask > 0)
    out["residual"] = {
        "definition": "input - A(restored) on the input grid, within the foreground"
        + (" and the known voxels" if task.mask is not None else ""),
        **quality.residual_stats(measured - r.fitted, r.fitted, region, r.sigma),
    }
    return out


def _no_reference(array: np.ndarray, mask: np.ndarray, modality: str) -> dict:
    sigma = estimate_noise(array, modality)
    return {
        "sigma": sigma,
        "snr": quality.snr(array, mask, sigma),
        "fber": quality.fber(array, mask),
    }


def _add_full_reference(out: dict, run: Run, estimates: dict, mask: np.ndarray) -> None:
    reference = run.reference.array
    rng, how = metrics.data_range(reference)
    out["data_range"], out["data_range_method"] = rng, how
    for name, (array, _) in estimates.items():
        if array.shape != reference.shape:
            array = _nearest_on(array, reference.shape)
            out[name]["grid"] = "nearest-neighbour copy on the reference grid"
        out[name].update(metrics.full_reference(array, reference, rng, mask))


def _nearest_on(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    for axis, n in enumerate(shape):
        array = np.repeat(array, n // array.shape[axis], axis=axis)
    return array


def _fit(run: Run) -> dict:
    """What the method did: the keys every method has, then its own (`_FITS`)."""
    r = run.restoration
    common = {
        "method": r.method,
        "seconds": r.seconds,
        "device": r.device,
        "peak_gpu_memory_bytes": _peak_gpu_memory(r),
        "peak_host_memory_bytes": peak_host_memory_bytes(),
        "curve_units": run.volume.meta.units or "image units",
    }
    return common | _FITS[r.method](run)


def _dip_fit(run: Run) -> dict:
    """The DIP fit: its iterations and stop, the misfit and loss per iteration."""
    r = run.restoration
    dip, fit = r.run, r.run.fit
    return {
        "iterations": fit.iterations,
        "stop_iteration": fit.iterations if fit.stop_reason == "rule" else None,
        "best_iteration": fit.best_iteration,
        "stop_reason": fit.stop_reason,
        "seconds_per_iteration": fit.seconds / max(fit.iterations, 1),
        "mode": dip.mode,
        "slice_axis": dip.slice_axis if dip.mode == "2d" else None,
        "loss": dip.loss,
        "rule": _dip_rule(run.config, r),
        "curve": _curve(fit.losses, np.sqrt(np.maximum(fit.misfits, 0)) * r.normaliser.scale),
    }


def _guided_fit(run: Run) -> dict:
    """Guided denoising: the candidates with their risks, each member's SURE per step."""
    g = run.restoration.run
    return {
        "iterations": g.steps,  # the members' steps
        "stop_reason": "risk",
        "mode": "3d",
        "slice_axis": None,
        "loss": g.settings.member,
        "rule": _risk_rule(g),
        "candidates": [
            {"name": name, "risk": float(risk), "returned": name == g.chosen}
            for name, risk in g.risks.items()
            if name != "prior"
        ],
        "members": [_member_curve(c) for c in g.member_curves],
    }


def _internal_fit(run: Run) -> dict:
    """Internal-learning sr: its training loss per step, then the back-projection."""
    r = run.restoration
    sr = r.run
    return {
        "iterations": sr.steps,
        "stop_iteration": None,
        "best_iteration": sr.steps,
        "stop_reason": "steps",
        "seconds_per_iteration": sr.seconds / max(sr.steps, 1),
        "mode": "2d",
        "slice_axis": sr.slice_axis,
        "loss": "l1",
        "rule": _internal_rule(run.config, r),
        "curve": _curve(sr.losses),
    }


def _peak_gpu_memory(r) -> int | None:
    if not r.device.startswith("cuda"):
        return None
    if r.method == "dip":
        return r.run.fit.peak_memory_bytes
    import torch

    return int(torch.cuda.max_memory_allocated())


_BAYES = CollaborativeSettings()  # the Bayes stages' settings, as the engine runs them


def _risk_rule(g) -> dict:
    """Guided denoising: the candidate with the lowest SURE (stabilised units; the input scores
    its noise variance there, 1 unless read again on the guide's residual)."""
    return {
        "name": "sure",
        "chosen": g.chosen,
        "guide": g.settings.guide,
        "guide_variant": g.guide_variant,
        "guide_pair": pairs_guide(g.settings),
        "guide_pilots_final": guide_pilots_final(g.settings),
        "step_guide_bayes": _BAYES.step_guide_bayes,  # the guide's grid (voxels)
        # the final stage's smoother variant's covariance scale, as it ran: with members on
        # MR, the guide's echo out of the pilot's covariance (`collaborative.bayes`'s echo)
        "final_echo": g.final_echo,
        "smooth_scale": _BAYES.variant_scale(g.final_echo),
        "smooth_scale_guide": _BAYES.smooth_scale_guide,
        # the Bayes stages' homogeneous-area band (noise stds): flat groups their mean
        "homogeneous": None if _BAYES.homogeneous is None else list(_BAYES.homogeneous),
        "members": g.members,
        "quality": g.settings.quality,
        "member": g.settings.member,
        "stage_seconds": g.stage_seconds,
        **{f"risk_{k}": float(v) for k, v in g.risks.items()},
        "counted_share": g.counted_share,  # the share of the voxels the risks average (MR: not air)
        "air_sigmas": DARK_SIGMAS,  # ... air: the guide below this many noise sigmas
        "noise_source": g.noise_source,
        "noise_correlated": g.noise_correlated,
    }


def _dip_rule(config: RestoreConfig, r) -> dict:
    """The DIP stop rule; its level is the noise, or (sr after denoising) the error left
    in the denoised slices."""
    sigma = r.run.fit_sigma
    rule = {"name": config.stop}
    if config.stop == "discrepancy":
        rule |= {
            "tau": config.stop_tau,
            "threshold_rms_misfit": float(np.sqrt(config.stop_tau)) * sigma,
        }
    elif config.stop == "variance":
        rule |= {"patience": config.stop_patience}
    first = r.denoised_first
    if first is not None:
        rule["denoised_first"] = {
            "chosen": first.chosen,
            "risk": float(first.risks[first.chosen]),
            "guide": first.settings.guide,
            "fit_sigma": float(sigma),
        }
    return rule


def _internal_rule(config: RestoreConfig, r) -> dict:
    """Internal-learning sr: a fixed number of steps, then back-projection onto the
    measured slices down to the discrepancy level."""
    rule = _dip_rule(replace(config, stop="discrepancy"), r)
    rule["name"] = "internal"
    rule["rms_misfit"] = r.run.rms_misfit
    return rule


_FITS = {"dip": _dip_fit, "guided": _guided_fit, "internal": _internal_fit}


def _member_curve(curve: np.ndarray) -> dict:
    """One member's loss per step and its held-out check (`report._guided_charts`; null
    at the steps it was not computed)."""
    index = _decimated(len(curve))
    return {
        "step": [i + 1 for i in index],
        "trained": [float(curve[i, 0]) for i in index],
        "held_out": [float(curve[i, 1]) if np.isfinite(curve[i, 1]) else None for i in index],
    }


def _decimated(count: int) -> list[int]:
    """Every k-th point (and the last), so that long curves stay a few kilobytes."""
    step = max(1, int(np.ceil(count / CURVE_POINTS)))
    return sorted(set(range(0, count, step)) | ({count - 1} if count else set()))


def _curve(losses: np.ndarray, rms_misfit: np.ndarray | None = None) -> dict:
    """The loss (and the rms misfit) per iteration, decimated (`_decimated`)."""
    index = _decimated(len(losses))
    curve = {
        "iteration": [i + 1 for i in index],
        "loss": [float(losses[i]) for i in index],
    }
    if rms_misfit is not None:
        curve["rms_misfit"] = [float(rms_misfit[i]) for i in index]
    return curve
