"""The restoration commands: denoise, sr, inpaint (fit a deep prior), degrade (simulate)."""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dipmed import __version__
from dipmed.config import choices, load_config
from dipmed.errors import InputError
from dipmed.io import output_format, read_volume, write_volume
from dipmed.io.paths import check_output
from dipmed.progress import ProgressPrinter
from dipmed.report import Run, write_report
from dipmed.restoration.noise.estimate import add_noise
from dipmed.restoration.operators import Downsample, apply
from dipmed.restoration.restore import Task, memory_plan, restore
from dipmed.restoration.runtime.checkpoint import Checkpoint, Interrupted, fingerprint
from dipmed.restoration.runtime.events import Stage
from dipmed.volume import Volume, coarsen_affine, refine_affine


def add_restore_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="NIfTI file, DICOM folder or DICOM file")
    parser.add_argument(
        "output",
        type=Path,
        help=".nii/.nii.gz, or a folder for a derived DICOM series (DICOM input)",
    )
    parser.add_argument(
        "--method",
        choices=choices("method"),
        help="guided (default; denoise: non-local guide + a deep prior piloting a Bayes "
        "stage; sr: the slices "
        "denoised first where the noise is read from air or given) or dip (anchored DIP only)",
    )
    parser.add_argument(
        "--quality",
        choices=choices("guided.quality"),
        help="guided denoising: fast (the non-local guide alone, BM4D-class time), default "
        "(one deep-prior member piloting a final stage) or best (three members; slowest)",
    )
    parser.add_argument("--mode", choices=choices("mode"), help="generator: 2D slices, 3D")
    parser.add_argument("--device", choices=choices("device"))
    parser.add_argument("--seed", type=int, help="seed for weights, input and perturbations")
    parser.add_argument("--max-iters", type=int, help="the DIP fit's iteration cap (method dip)")
    parser.add_argument(
        "--member-steps",
        type=int,
        help="guided denoising: steps per deep-prior member (default: the preset's)",
    )
    parser.add_argument(
        "--memory-gb", type=float, help="memory budget of the plan (default: 80 %% of available)"
    )
    parser.add_argument("--config", type=Path, help="YAML file of restoration settings")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: torch's choice)"
    )
    parser.add_argument(
        "--report", type=Path, help="folder for report.json and report.html (with images)"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="clean volume on the output grid: adds PSNR, SSIM and NRMSE to the report",
    )
    parser.add_argument(
        "--uncertainty",
        type=Path,
        help="denoise: also write the per-voxel uncertainty (estimated error std, image "
        "units) on the output grid, as NIfTI",
    )
    add_selection(parser)
    # JSON sidecar keys beyond dipmed's own (the BIDS App adds Sources)
    parser.set_defaults(sidecar={}, uncertainty_sidecar={})


def add_selection(parser: argparse.ArgumentParser) -> None:
    """--series and --volume: which series of a DICOM folder, which volume of a 4D input."""
    parser.add_argument(
        "--series", help="SeriesNumber or SeriesInstanceUID, for a folder holding several series"
    )
    parser.add_argument(
        "--volume",
        type=int,
        help="volume index (from 0) in a 4D NIfTI, mosaic series or multi-volume multi-frame "
        "file (dipmed info lists them)",
    )


def read_input(args: argparse.Namespace) -> Volume:
    """The volume `args.input` names (--series, --volume); what reading it had to assume
    (missing geometry) is printed to stderr, and kept in the volume's meta."""
    volume = read_volume(args.input, series=args.series, volume=args.volume)
    for warning in volume.meta.warnings:
        print(f"dipmed {args.command}: warning: {warning}", file=sys.stderr)
    return volume


def run_restore(args: argparse.Namespace) -> None:
    printer = ProgressPrinter(label=f"dipmed {args.command}")
    # a slow read (a large DICOM folder) gets a line; a refused input gets only its error
    reading = threading.Timer(2.0, printer, (Stage("reading the input"),))
    reading.start()
    try:
        volume, task, reference, config = _prepare(args)
    finally:
        reading.cancel()
    checkpoint = _checkpoint(args, volume, task, config)  # refused before any line
    shape = "x".join(map(str, volume.shape))
    printer(Stage(f"read {shape} voxels ({volume.meta.modality or 'unknown modality'})"))
    if args.threads:
        torch.set_num_threads(max(1, args.threads))
    printer.every = config.fit.log_every
    previous = signal.signal(signal.SIGTERM, checkpoint.request_stop)
    try:
        result = restore(volume, task, config, progress=printer, checkpoint=checkpoint)
    except Interrupted as stop:
        printer.close()
        raise Interrupted(
            f"{stop}; the state is in {checkpoint.path}: run the same command again to resume"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    printer(Stage("writing"))
    _write_outputs(args, result, volume, task, config, reference, printer)
    printer.close()
    checkpoint.remove()  # the output is written: nothing left to resume
    print(f"wrote {args.output}: {_what_ran(result, config)}")


def _write_outputs(args, result, volume, task, config, reference, printer) -> None:
    """The restored volume, its uncertainty map (when asked), its report (when asked)."""
    write_volume(
        result.volume,
        args.output,
        input_path=args.input,
        overwrite=args.overwrite,
        label=f"dipmed {args.command}",
        derivation=_derivation(args.command, result),
        sidecar=_resolution(args, result.volume) | args.sidecar,
    )
    if getattr(args, "uncertainty", None) is not None:
        write_volume(
            result.volume.with_array(result.uncertainty, result.volume.affine),
            args.uncertainty,
            input_path=args.input,
            overwrite=args.overwrite,
            label="uncertainty (dipmed)",
            derivation="dipmed denoise: per-voxel uncertainty (estimated error std)",
            number_offset=1001,  # beside the restored series (+ 1000)
            sidecar=args.uncertainty_sidecar,
        )
    if args.report is not None:
        run = Run(
            args.command,
            args.input,
            args.output,
            volume,
            task,
            config,
            result,
            getattr(args, "command_line", ["dipmed", args.command]),
            reference,
            args.reference,
        )
        printer(Stage("report"))
        write_report(run, args.report)
        printer.close()
        print(f"wrote {args.report / 'report.html'}")


def _resolution(args: argparse.Namespace, volume: Volume) -> dict:
    """sr: the BIDS Resolution key (its output names carry a res- entity)."""
    if args.command != "sr":
        return {}
    spacing = "x".join(f"{s:.4g}" for s in volume.spacing)
    factor = "x".join(map(str, args.factor))
    return {"Resolution": f"{spacing} mm voxels: the input's grid refined {factor}"}


def _prepare(args: argparse.Namespace):
    """Config, input and task, every check before any work: (volume, task, reference, config)."""
    config = load_config(
        args.config,
        method=args.method,
        mode=args.mode,
        device=args.device,
        seed=args.seed,
        memory_gb=args.memory_gb,
        sr_method=getattr(args, "sr_method", None),
        **{
            "fit.max_iters": args.max_iters,
            "guided.quality": args.quality,
            "guided.iterations": args.member_steps,
        },
    )
    volume = read_input(args)
    check_output(args.input, args.output, overwrite=args.overwrite)
    if args.report is not None:
        _check_report_folder(args)
    if getattr(args, "uncertainty", None) is not None:
        _check_uncertainty(args, config.method, volume)
    bad = int(np.size(volume.array) - np.count_nonzero(np.isfinite(volume.array)))
    if bad:
        raise InputError(
            f"{args.input} holds {bad} NaN or infinite voxels; replace them "
            "(for example with 0) before restoring"
        )
    task = _task(args, volume)
    reference = _reference(args, volume, task)
    memory_plan(volume, task, config)  # a volume that cannot fit is refused before any work
    return volume, task, reference, config


def _checkpoint(args: argparse.Namespace, volume, task: Task, config) -> Checkpoint:
    """The checkpoint beside the output, loaded when an earlier run of the same command left
    one (InputError when it belongs to another input or other settings)."""
    mask = None if task.mask is None else hashlib.sha256(task.mask.tobytes()).hexdigest()
    # the budget and the save interval do not change the result (a retried Snakemake job
    # gets more memory; the plan's patch is kept in the checkpoint instead)
    settings = replace(config, memory_gb=0.0, checkpoint_s=0.0)
    key = fingerprint(volume.array, volume.affine, args.command, task.factors, mask, settings)
    checkpoint = Checkpoint.beside(args.output, key, every_s=config.checkpoint_s).open()
    if checkpoint.keys:
        done = ", ".join(checkpoint.keys)
        print(
            f"dipmed {args.command}: resuming from {checkpoint.path.name} ({done})", file=sys.stderr
        )
    return checkpoint


def _task(args: argparse.Namespace, volume) -> Task:
    if args.command == "sr":
        return Task("sr", factors=args.factor)
    if args.command == "inpaint":
        mask = read_volume(args.mask)
        if mask.shape != volume.shape:
            raise InputError(
                f"--mask shape {mask.shape} differs from the input's "
                f"{volume.shape}; give a mask on the input's grid"
            )
        return Task("inpaint", mask=mask.array > 0)
    return Task("denoise")


def _check_uncertainty(args: argparse.Namespace, method: str, volume) -> None:
    """--uncertainty: denoising with the guided method; a NIfTI path, or (DICOM input) a
    new folder for a derived series, not yet taken."""
    path = args.uncertainty
    if args.command != "denoise" or method != "guided":
        raise InputError(
            "--uncertainty needs denoise with method guided (the default); "
            "drop it for sr, inpaint and method dip"
        )
    if output_format(path) == "dicom" and volume.meta.source_format != "dicom":
        raise InputError(
            f"--uncertainty {path} is a DICOM folder but the input is not DICOM; "
            "give a path ending .nii or .nii.gz"
        )
    check_output(args.input, path, overwrite=args.overwrite)
    if path.resolve() == args.output.resolve():
        raise InputError("--uncertainty must differ from the output path")


def _check_report_folder(args: argparse.Namespace) -> None:
    """The report folder: not the input or the output, not inside either, not existing."""
    check_output(args.input, args.report, overwrite=args.overwrite)
    check_output(args.output, args.report, overwrite=args.overwrite)


def _reference(args: argparse.Namespace, volume, task: Task):
    """The --reference volume, refused unless it lies on the output grid."""
    if args.reference is None:
        return None
    reference = read_volume(args.reference)
    shape = task.output_shape(volume.shape)
    affine = refine_affine(volume.affine, task.factors)
    if reference.shape != shape or not np.allclose(reference.affine, affine, atol=1e-3):
        raise InputError(
            f"--reference {args.reference} is on a grid of shape {reference.shape} that is "
            f"not the output grid {shape}; give a reference with the output's shape and affine"
        )
    return reference


def _derivation(command: str, result) -> str:
    """What made the output, for its header (NIfTI descrip, DICOM derivation)."""
    run = result.run
    if result.method == "guided":
        s = run.settings
        return (
            f"dipmed {__version__} {command}: Deep Image Prior, guided (quality "
            f"{s.quality}: {s.guide} guide, {run.members} {s.member}-trained BasicUNet "
            f"member{'' if run.members == 1 else 's'}, returned: {run.chosen}), noise sigma "
            f"{result.sigma:.4g}; seconds: "
            + ", ".join(f"{k} {v:.1f}" for k, v in run.stage_seconds.items())
        )
    if result.method == "internal":
        return (
            f"dipmed {__version__} {command}: internal learning from the scan's own slices "
            f"(2D BasicUNet, {run.steps} steps), back-projected onto them"
        )
    return (
        f"dipmed {__version__} {command}: Deep Image Prior ({run.mode.upper()} "
        f"BasicUNet, {run.loss} loss), noise sigma {result.sigma:.4g}"
    )


def _what_ran(result, config) -> str:
    """The console's last line: what the method did, in how long, where."""
    run, where = result.run, f"in {result.seconds:.1f}s on {result.device}"
    if result.method == "guided":
        return (
            f"guided denoising, {run.steps} member steps {where}, "
            f"returned the {run.chosen} estimate"
        )
    if result.method == "internal":
        return f"internal sr, {run.steps} steps {where}, back-projected onto the slices"
    fit = run.fit
    return (
        f"{fit.iterations} iterations {where}, result from iteration {fit.best_iteration} "
        f"(stop: {config.stop}, {fit.stop_reason})"
    )


def parse_factors(text: str) -> tuple[int, int, int]:
    try:
        factors = tuple(int(v) for v in text.split(","))
    except ValueError:
        factors = ()
    if len(factors) != 3 or min(factors) < 1:
        raise argparse.ArgumentTypeError(
            f"--factor needs three integers >= 1 such as 1,1,4, got {text!r}"
        )
    return factors  # type: ignore[return-value]


def run_degrade(args: argparse.Namespace) -> None:
    volume = read_input(args)
    check_output(args.input, args.output, overwrite=args.overwrite)
    array, affine = volume.array, volume.affine
    if args.factor != (1, 1, 1):
        array, affine = _downsample(array, args.factor), coarsen_affine(affine, args.factor)
    if args.sigma > 0:
        sigma = args.sigma * float(np.max(volume.array))
        array = add_noise(array, sigma, args.noise, np.random.default_rng(args.seed))
    write_volume(
        volume.with_array(array, affine),
        args.output,
        input_path=args.input,
        overwrite=args.overwrite,
        label="dipmed degrade",
        derivation=f"simulated by dipmed degrade: noise {args.noise} "
        f"sigma {args.sigma} of max, factors {args.factor}",
    )
    print(f"wrote {args.output}")


def _downsample(array: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    crop = tuple(slice(0, n // f * f) for n, f in zip(array.shape, factors, strict=True))
    if any(n // f < 1 for n, f in zip(array.shape, factors, strict=True)):
        raise InputError(f"--factor {factors} is larger than the volume {array.shape}")
    return apply(Downsample(factors), array[crop]).astype(np.float32)
