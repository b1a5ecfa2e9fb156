"""Quality reports: report.json (figures for tools) and report.html (views for people).

Patient identifiers found in the source headers are redacted from both.
"""

from __future__ import annotations

import json
from pathlib import Path

from dipmed.io.paths import atomic_output
from dipmed.report.checks import flags
from dipmed.report.content import Run, build_report
from dipmed.report.curves import Line, Mark, chart
from dipmed.report.figures import figures
from dipmed.report.methods import methods
from dipmed.report.page import render
from dipmed.report.privacy import identifiers, redact

__all__ = ["Run", "write_report"]


def write_report(run: Run, folder: Path) -> dict:
    """Write `folder`/report.json and report.html atomically; return the report."""
    report = build_report(run)
    report["flags"] = flags(report)
    tokens = identifiers(run.volume, run.reference)
    report = redact(report, tokens)
    page = render(report, figures(run), charts(report), methods(report))
    with atomic_output(folder) as tmp:
        tmp.mkdir()
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (tmp / "report.html").write_text(redact(page, tokens))
    return report


def charts(report: dict) -> list[str]:
    """The misfit curve with the noise level, the rule's threshold and the stop marked,
    and the training loss."""
    fit, sigma = report["fit"], report["noise"]["sigma"]
    curve, units = fit["curve"], fit["curve_units"]
    marks = [Mark(f"noise sigma {sigma:.3g}", sigma, "#888")]
    if "threshold_rms_misfit" in fit["rule"]:
        marks.append(
            Mark("stop threshold", fit["rule"]["threshold_rms_misfit"], "#c62828", label_left=True)
        )
    if fit["stop_iteration"]:
        marks.append(Mark(f"stop {fit['stop_iteration']}", fit["stop_iteration"], "#c62828", True))
    marks.append(Mark(f"result {fit['best_iteration']}", fit["best_iteration"], "#2e7d32", True))
    misfit = chart(
        "Misfit |A(x) - y| (RMS) per iteration",
        curve["iteration"],
        [Line("RMS misfit", curve["rms_misfit"], "#1565c0")],
        marks,
        y_label=f"RMS misfit ({units})",
    )
    title, label = f"Training loss ({fit['loss']}, normalised units)", "loss"
    lines = [Line("loss", curve["loss"], "#6a1b9a")]
    if "held_out" in curve:  # guided: a loss that falls while the held-out half's rises
        title = "Members' SURE per step (stabilised units)"
        label = "SURE"
        lines = [
            Line("trained half (the loss)", curve["loss"], "#6a1b9a"),
            Line("held-out half (never trained on)", curve["held_out"], "#ef6c00"),
        ]
    loss = chart(title, curve["iteration"], lines, [m for m in marks if m.vertical], y_label=label)
    return [misfit, loss]
