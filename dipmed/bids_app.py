"""`dipmed bids BIDS_DIR OUTPUT_DIR participant`: the BIDS App entry point. Each anatomical
image of the chosen participants is restored by the same code as `dipmed denoise` / `dipmed
sr` (one after another on this machine; the Snakemake workflow runs many on a cluster)
into a BIDS-derivatives dataset. Every check runs before anything is written."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dipmed.bids import ANAT_SUFFIXES, Job, check_dataset, plan
from dipmed.commands import parse_factors
from dipmed.config import choices
from dipmed.derivatives import write_dataset_description
from dipmed.errors import InputError
from dipmed.io.paths import check_output

REPORTS = "reports"  # OUTPUT_DIR/reports/<name>/report.html (listed in .bidsignore)
# options handed on to each restoration as given
PASSED = ("quality", "member_steps", "max_iters", "device", "seed", "threads", "memory_gb")


def add_bids_command(commands) -> None:
    bids = commands.add_parser(
        "bids",
        help="BIDS App: restore the anatomical images of a BIDS dataset into derivatives",
    )
    bids.add_argument("bids_dir", type=Path, help="the BIDS dataset's root folder")
    bids.add_argument("output_dir", type=Path, help="the derivatives folder to write")
    bids.add_argument("analysis_level", choices=("participant",), help="participant")
    bids.add_argument(
        "--participant-label", nargs="+", help="labels to restore (without sub-; default all)"
    )
    bids.add_argument("--task", choices=("denoise", "sr"), default="denoise")
    bids.add_argument(
        "--factor", type=parse_factors, default=(1, 1, 2), help="sr: per array axis (1,1,2)"
    )
    bids.add_argument(
        "--suffix", nargs="+", help=f"image suffixes (default: {' '.join(ANAT_SUFFIXES)})"
    )
    bids.add_argument("--quality", choices=choices("guided.quality"))
    bids.add_argument("--member-steps", type=int, help="denoise: steps per deep-prior member")
    bids.add_argument("--max-iters", type=int, help="the DIP fit's iteration cap")
    bids.add_argument("--device", choices=choices("device"))
    bids.add_argument("--seed", type=int)
    bids.add_argument("--threads", type=int)
    bids.add_argument("--memory-gb", type=float)
    bids.add_argument("--config", type=Path, help="YAML file of restoration settings")
    bids.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    bids.set_defaults(run=run_bids)


def run_bids(args: argparse.Namespace) -> None:
    from dipmed.cli import build_parser  # the restore commands' own parser (cli imports us)

    source = _check_folders(args.bids_dir, args.output_dir)
    factor = ",".join(map(str, args.factor))
    jobs = plan(args.bids_dir, args.participant_label, args.suffix, args.task, factor)
    for job in jobs:
        for path in _outputs(args, job):
            check_output(job.source, path, overwrite=args.overwrite)
    for n, job in enumerate(jobs, start=1):
        print(f"dipmed bids: {n}/{len(jobs)} {job.relative}", flush=True)
        argv = _argv(args, job)
        restore = build_parser().parse_args(argv)
        restore.command_line = ["dipmed", *argv]
        restore.sidecar = {"Sources": [f"bids:raw:{job.relative}"], "Parameters": _params(args)}
        restore.uncertainty_sidecar = {
            "Sources": [f"bids:raw:{job.relative}", f"bids::{job.derivative.path()}.nii.gz"]
        }
        restore.run(restore)
    write_dataset_description(args.output_dir, source, ignore=[f"/{REPORTS}"])
    print(f"dipmed bids: wrote {len(jobs)} restorations and {args.output_dir}")


def _check_folders(bids_dir: Path, output_dir: Path) -> dict:
    """The raw dataset as SourceDatasets names it; refuses an output over the dataset."""
    description = check_dataset(bids_dir)
    raw, out = bids_dir.resolve(), output_dir.resolve()
    if out == raw or (raw in out.parents and (raw / "derivatives") not in out.parents):
        raise InputError(
            f"output {output_dir} lies in the raw dataset {bids_dir}; write to "
            f"{bids_dir / 'derivatives' / 'dipmed'} or a folder outside it"
        )
    if raw in out.parents:
        url = Path(os.path.relpath(raw, out)).as_posix()
    else:
        url = raw.as_uri()
    return {"Name": str(description.get("Name", "")), "URL": url}


def _outputs(args: argparse.Namespace, job: Job) -> list[Path]:
    derivative = job.derivative
    out = [
        args.output_dir / f"{derivative.path()}.nii.gz",
        args.output_dir / REPORTS / derivative.name(),
    ]
    if args.task == "denoise":
        out.append(args.output_dir / f"{derivative.uncertainty}.nii.gz")
    return out


def _argv(args: argparse.Namespace, job: Job) -> list[str]:
    """The restore command line this job runs (what `dipmed denoise` / `sr` would get)."""
    output, report, *uncertainty = map(str, _outputs(args, job))
    argv = [args.task, str(job.source), output, "--report", report]
    argv += ["--uncertainty", uncertainty[0]] if uncertainty else []
    argv += ["--factor", ",".join(map(str, args.factor))] if args.task == "sr" else []
    argv += ["--overwrite"] if args.overwrite else []
    argv += ["--config", str(args.config)] if args.config else []
    for key in PASSED:
        value = getattr(args, key)
        argv += [f"--{key.replace('_', '-')}", str(value)] if value is not None else []
    return argv


def _params(args: argparse.Namespace) -> dict:
    """The sidecar's Parameters: what was asked of the restoration (None: dipmed's default)."""
    params = {"task": args.task} | {key: getattr(args, key) for key in PASSED if key != "threads"}
    if args.task == "sr":
        params["factor"] = list(args.factor)
    return {k: v for k, v in params.items() if v is not None}
