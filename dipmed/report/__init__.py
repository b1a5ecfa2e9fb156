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
    """What the method did, drawn: the DIP fit's misfit and loss per iteration, internal
    sr's training loss per step, guided denoising's members' loss per step."""
    return _CHARTS[report["fit"]["method"]](report)


def _dip_charts(report: dict) -> list[str]:
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
    loss = chart(
        f"Training loss ({fit['loss']}, normalised units)",
        curve["iteration"],
        [Line("loss", curve["loss"], "#6a1b9a")],
        [m for m in marks if m.vertical],
        y_label="loss",
    )
    return [misfit, loss]


def _internal_charts(report: dict) -> list[str]:
    curve = report["fit"]["curve"]
    line = Line("L1 loss", curve["loss"], "#6a1b9a")
    title = "Training loss per step (L1, normalised units): the scan's own slices"
    return [chart(title, curve["iteration"], [line], [], y_label="loss", x_label="step")]


_MEMBER_COLOURS = (("#6a1b9a", "#ef6c00"), ("#1565c0", "#c62828"), ("#2e7d32", "#8d6e63"))


def _guided_charts(report: dict) -> list[str]:
    """Each member's loss per step beside its held-out check: SURE members, their SURE on
    the trained half (the loss) and on the held-out half, which no step trained on;
    recorrupted members, the misfit less its constant on the pairs trained on (the loss)
    and on a pair never trained on. A loss that falls while its check rises is
    memorising."""
    fit = report["fit"]
    members = fit["members"]
    if not members:
        return []
    sure = fit.get("loss", "sure") == "sure"
    names = (
        ("trained half (the loss)", "held-out half (never trained on)")
        if sure
        else ("pairs trained on (the loss)", "a pair never trained on")
    )
    lines = []
    for n, member in enumerate(members):
        trained, held = _MEMBER_COLOURS[n % len(_MEMBER_COLOURS)]
        name = f"member {n + 1}: " if len(members) > 1 else ""
        lines.append(Line(f"{name}{names[0]}", member["trained"], trained))
        lines.append(Line(f"{name}{names[1]}", member["held_out"], held))  # None: unchecked
    if sure:
        title, label = "Members' SURE per step (stabilised units; the input scores 1)", "SURE"
    else:
        title = "Members' misfit per step, less its constant (stabilised units)"
        label = "misfit"
    return [chart(title, members[0]["step"], lines, [], y_label=label, x_label="step")]


_CHARTS = {"dip": _dip_charts, "internal": _internal_charts, "guided": _guided_charts}
