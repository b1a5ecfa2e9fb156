"""The `dipmed` command line. Exit codes: 0 done, 2 bad input or usage, 1 unexpected."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dipmed import __version__
from dipmed.bids_app import add_bids_command
from dipmed.commands import (
    add_restore_options,
    add_selection,
    parse_factors,
    read_input,
    run_degrade,
    run_restore,
)
from dipmed.config import choices
from dipmed.derivatives import write_dataset_description
from dipmed.errors import InputError
from dipmed.io import find_series, list_volumes, read_volume, write_volume
from dipmed.report.summary import summarize
from dipmed.restoration.runtime.checkpoint import Interrupted
from dipmed.volume import Volume


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dipmed", description="Deep Image Prior restoration of 3D scans.")
    parser.add_argument("--version", action="version", version=f"dipmed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    info = commands.add_parser("info", help="describe a volume or list a folder's series")
    info.add_argument("path", type=Path, help="NIfTI file, DICOM series folder or DICOM file")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_selection(info)
    info.set_defaults(run=run_info)
    convert = commands.add_parser("convert", help="convert between NIfTI and DICOM")
    convert.add_argument("input", type=Path, help="NIfTI file, DICOM folder or DICOM file")
    convert.add_argument(
        "output",
        type=Path,
        help=".nii/.nii.gz for NIfTI; any other path: a folder for a derived "
        "DICOM series (DICOM input only)",
    )
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_selection(convert)
    convert.set_defaults(run=run_convert)
    _add_restore_commands(commands)
    add_bids_command(commands)
    summary = commands.add_parser("summarize", help="one table over many reports")
    summary.add_argument(
        "reports", type=Path, nargs="+", help="report.json files or the folders --report wrote"
    )
    summary.add_argument(
        "--out", type=Path, required=True, help="folder for summary.tsv and summary.html"
    )
    summary.add_argument("--overwrite", action="store_true", help="replace existing summaries")
    summary.set_defaults(run=run_summarize)
    dataset = commands.add_parser(
        "describe-dataset", help="write dataset_description.json (BIDS derivatives)"
    )
    dataset.add_argument("folder", type=Path, help="the derivatives folder")
    dataset.add_argument(
        "--ignore", nargs="*", default=[], help=".bidsignore patterns (what BIDS does not name)"
    )
    dataset.set_defaults(
        run=lambda args: print(
            f"wrote {write_dataset_description(args.folder, ignore=args.ignore)}"
        )
    )
    return parser


def _add_restore_commands(commands) -> None:
    denoise = commands.add_parser("denoise", help="denoise with a deep image prior")
    add_restore_options(denoise)
    sr = commands.add_parser("sr", help="super-resolve (e.g. thick slices) with a deep prior")
    add_restore_options(sr)
    sr.add_argument(
        "--factor",
        type=parse_factors,
        required=True,
        help="integer factor per array axis, e.g. 1,1,4 for 4x thinner slices",
    )
    sr.add_argument(
        "--sr-method",
        choices=choices("sr_method"),
        help="internal (a network learnt from the scan's own slices, then back-projected), "
        "dip (anchored deep image prior), or auto (default: internal where the output is too "
        "large for a whole 3D fit)",
    )
    inpaint = commands.add_parser("inpaint", help="fill masked voxels with a deep prior")
    add_restore_options(inpaint)
    inpaint.add_argument(
        "--mask",
        type=Path,
        required=True,
        help="volume on the input grid: 1 = known voxel, 0 = to fill",
    )
    for parser in (denoise, sr, inpaint):
        parser.set_defaults(run=run_restore)
    degrade = commands.add_parser("degrade", help="simulate noise and thick slices")
    degrade.add_argument("input", type=Path, help="clean volume")
    degrade.add_argument("output", type=Path, help="degraded volume (.nii.gz or folder)")
    degrade.add_argument("--noise", choices=("gaussian", "rician"), default="gaussian")
    degrade.add_argument(
        "--sigma",
        type=float,
        default=0.0,
        help="noise std as a fraction of the volume maximum (0.05 = 5%%)",
    )
    degrade.add_argument(
        "--factor",
        type=parse_factors,
        default=(1, 1, 1),
        help="box-average blocks of this many voxels per axis, e.g. 1,1,4",
    )
    degrade.add_argument("--seed", type=int, default=0, help="noise seed")
    degrade.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_selection(degrade)
    degrade.set_defaults(run=run_degrade)


def run_info(args: argparse.Namespace) -> None:
    found = find_series(args.path)
    listing = {"path": str(args.path), "format": "nifti" if found is None else "dicom"}
    if found is not None:
        listing["series"] = [s.summary() for s in found]
    if found is not None and len(found) > 1 and args.series is None:
        print(json.dumps(listing, indent=2) if args.json else _series_text(listing))
        return
    volumes = [] if args.volume is not None else list_volumes(args.path, found, series=args.series)
    if volumes:
        listing["volumes"] = volumes
        print(json.dumps(listing, indent=2) if args.json else _volumes_text(listing))
        return
    volume = read_volume(args.path, series=args.series, volume=args.volume)
    description = describe(volume, args.path)
    if found is not None:
        description["series"] = listing["series"]
    print(json.dumps(description, indent=2) if args.json else _volume_text(description))


def run_convert(args: argparse.Namespace) -> None:
    volume = read_input(args)
    write_volume(
        volume,
        args.output,
        input_path=args.input,
        overwrite=args.overwrite,
        label="dipmed convert",
        derivation=f"re-encoded by dipmed convert {__version__}: no intensity change",
    )
    print(f"wrote {args.output}")


def run_summarize(args: argparse.Namespace) -> None:
    rows = summarize(args.reports, args.out, overwrite=args.overwrite)
    print(f"wrote {args.out / 'summary.tsv'} and summary.html ({len(rows)} reports)")


def describe(volume: Volume, path: Path) -> dict:
    """The facts `dipmed info` prints (no patient identifiers)."""
    return {
        "path": str(path),
        "format": volume.meta.source_format,
        "shape": list(volume.shape),
        "spacing": [round(s, 6) for s in volume.spacing],
        "affine": [[round(float(v), 6) for v in row] for row in volume.affine],
        "orientation": volume.orientation,
        "modality": volume.meta.modality,
        "units": volume.meta.units,
        "series_description": volume.meta.series_description,
        "min": float(np.min(volume.array)),
        "max": float(np.max(volume.array)),
        "warnings": list(volume.meta.warnings),
    }


def _volume_text(d: dict) -> str:
    lines = [
        f"{d['path']}: {d['format']}",
        f"  shape        {' x '.join(map(str, d['shape']))}",
        f"  spacing      {' x '.join(f'{s:.4g}' for s in d['spacing'])} mm",
        f"  orientation  {d['orientation']}",
        f"  modality     {d['modality']}{' (' + d['units'] + ')' if d['units'] else ''}",
        f"  range        {d['min']:.6g} .. {d['max']:.6g}",
        "  affine       "
        + "\n               ".join(" ".join(f"{v:10.4f}" for v in row) for row in d["affine"]),
    ]
    lines += [f"  warning      {w}" for w in d["warnings"]]
    return "\n".join(lines)


def _volumes_text(listing: dict) -> str:
    rows = [
        f"{listing['path']}: {len(listing['volumes'])} volumes "
        "(choose one with --volume INDEX to describe or process it)"
    ]
    for item in listing["volumes"]:
        facts = "  ".join(f"{k}={_plain_text(v)}" for k, v in item.items() if k != "index")
        rows.append(f"  volume {item['index']:>4}  {facts}".rstrip())
    return "\n".join(rows)


def _plain_text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)


def _series_text(listing: dict) -> str:
    rows = [
        f"{listing['path']}: {len(listing['series'])} DICOM series "
        "(choose one with --series NUMBER or --series UID)"
    ]
    rows += [
        f"  {s['number'] or '?':>6}  {s['modality']:<4} {s['files']:>5} files  "
        f"{s['description']!r}  {s['uid']}"
        for s in listing["series"]
    ]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    try:
        args = build_parser().parse_args(argv)
        args.command_line = ["dipmed", *(sys.argv[1:] if argv is None else argv)]
        args.run(args)
    except InputError as error:
        print(f"dipmed: error: {error}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"dipmed: interrupted: {stop}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("dipmed: interrupted; no output was written", file=sys.stderr)
        return 130
    return 0


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())
