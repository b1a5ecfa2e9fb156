"""`dipmed summarize`: one row per report, as summary.tsv (for tools) and summary.html."""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path

from dipmed.errors import InputError
from dipmed.io.paths import atomic_output
from dipmed.report.style import CSS

COLUMNS = (  # (column, path into report.json)
    ("task", ("task",)),
    ("input", ("input", "name")),
    ("modality", ("input", "modality")),
    ("shape_in", ("input", "shape")),
    ("shape_out", ("output", "shape")),
    ("device", ("fit", "device")),
    ("mode", ("fit", "mode")),
    ("iterations", ("fit", "iterations")),
    ("stop_iteration", ("fit", "stop_iteration")),
    ("best_iteration", ("fit", "best_iteration")),
    ("stop_reason", ("fit", "stop_reason")),
    ("seconds", ("fit", "seconds")),
    ("peak_gpu_memory_bytes", ("fit", "peak_gpu_memory_bytes")),
    ("sigma_input", ("metrics", "input", "sigma")),
    ("sigma_restored", ("metrics", "restored", "sigma")),
    ("snr_input", ("metrics", "input", "snr")),
    ("snr_restored", ("metrics", "restored", "snr")),
    ("fber_input", ("metrics", "input", "fber")),
    ("fber_restored", ("metrics", "restored", "fber")),
    ("residual_std_over_sigma", ("metrics", "residual", "std_over_sigma")),
    ("residual_correlation", ("metrics", "residual", "correlation_with_restored")),
    ("psnr_input", ("metrics", "input", "psnr")),
    ("psnr_baseline", ("metrics", "baseline", "psnr")),
    ("psnr_restored", ("metrics", "restored", "psnr")),
    ("ssim_input", ("metrics", "input", "ssim")),
    ("ssim_baseline", ("metrics", "baseline", "ssim")),
    ("ssim_restored", ("metrics", "restored", "ssim")),
)


def summarize(reports: list[Path], out: Path, *, overwrite: bool = False) -> list[dict]:
    """Write `out`/summary.tsv and summary.html for `reports` (files or their folders)."""
    files = [path / "report.json" if path.is_dir() else path for path in reports]
    loaded = [(file, _load(file)) for file in files]
    for name in ("summary.tsv", "summary.html"):
        if (out / name).exists() and not overwrite:
            raise InputError(f"{out / name} exists; pass --overwrite to replace it")
    rows = [_row(file, report) for file, report in loaded]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / "summary.tsv") as tmp:
        tmp.write_text(_tsv(rows))
    with atomic_output(out / "summary.html") as tmp:
        tmp.write_text(_html(rows, out))
    return rows


def _load(file: Path) -> dict:
    try:
        report = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(
            f"cannot read report {file}: {error}; pass report.json files or "
            "the folders that --report wrote"
        ) from None
    if not isinstance(report, dict) or "dipmed_report" not in report:
        raise InputError(f"{file} is not a dipmed report (no dipmed_report key)")
    return report


def _row(file: Path, report: dict) -> dict:
    row = {"report": str(file.parent), "_html": file.parent / "report.html"}
    for column, keys in COLUMNS:
        row[column] = _get(report, keys)
    row["flags"] = ",".join(f["code"] for f in report.get("flags", []))
    return row


def _get(data, keys):
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _tsv(rows: list[dict]) -> str:
    names = ["report", *(c for c, _ in COLUMNS), "flags"]
    lines = ["\t".join(names)]
    lines += ["\t".join(_cell(row[n]) for n in names) for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None:
        return "NA"
    if isinstance(value, list):
        return "x".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\t", " ").replace("\n", " ")


HTML_COLUMNS = (  # the page shows the figures a reader scans; the TSV has them all
    "report", "task", "modality", "shape_in", "shape_out", "device", "iterations",
    "stop_iteration", "seconds", "sigma_input", "sigma_restored",
    "residual_std_over_sigma", "residual_correlation", "psnr_input", "psnr_baseline",
    "psnr_restored", "ssim_restored", "flags",
)  # fmt: skip


def _html(rows: list[dict], out: Path) -> str:
    shown = [n for n in HTML_COLUMNS if any(row[n] not in (None, "") for row in rows)]
    head = "".join(f"<th>{escape(n.replace('_', ' '))}</th>" for n in shown)
    body = "".join(_html_row(row, shown, out) for row in rows)
    flagged = sum(1 for row in rows if row["flags"])
    seconds = sum(row["seconds"] or 0 for row in rows)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>dipmed summary'
        f"</title><style>{CSS} body {{ max-width: 1600px; }}</style></head>"
        "<body><h1>dipmed summary</h1>"
        f'<p class="headline">{len(rows)} volumes, {flagged} with warnings; '
        f"{seconds:.1f} s of fitting in all.</p>"
        '<p class="note">Rows with warnings are shaded; the report name opens its page; '
        "summary.tsv beside this page has every column.</p>"
        f'<div style="overflow-x:auto"><table class="metrics"><tr>{head}</tr>{body}</table></div>'
        "</body></html>\n"
    )


def _html_row(row: dict, shown: list[str], out: Path) -> str:
    link = os.path.relpath(row["_html"].resolve(), out.resolve())
    cells = []
    for name in shown:
        value = row[name]
        text = escape(f"{value:.4g}" if isinstance(value, float) else _cell(value))
        if name == "report":
            title = escape(_cell(value))
            text = f'<a href="{escape(link)}" title="{title}">{escape(Path(value).name)}</a>'
        cells.append(f'<td class="{"bad" if row["flags"] else ""}">{text}</td>')
    return f"<tr>{''.join(cells)}</tr>"
