"""report.html: one self-contained page (images inline as data URIs, charts as SVG, no
scripts, nothing fetched) that opens offline in any browser."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from dipmed.report.style import CSS

METRIC_COLUMNS = (  # key, heading, digits; "higher"/"lower" is better
    ("sigma", "noise &sigma;", 4, "lower"),
    ("snr", "SNR", 1, "higher"),
    ("fber", "FBER", 1, "higher"),
    ("psnr", "PSNR dB", 2, "higher"),
    ("ssim", "SSIM", 4, "higher"),
    ("psnr_foreground", "PSNR fg dB", 2, "higher"),
    ("ssim_foreground", "SSIM fg", 4, "higher"),
    ("nrmse", "NRMSE", 4, "lower"),
)


@dataclass(frozen=True)
class Figure:
    """A titled group of image rows (label, data URI) under one caption."""

    title: str
    caption: str
    rows: list[tuple[str, str]]


def render(report: dict, figures: list[Figure], charts: list[str], methods: str) -> str:
    title = f"dipmed {report['task']}: {report['input']['name']}"
    body = [
        f"<h1>{escape(title)}</h1>",
        _headline(report),
        _flags(report["flags"], report["fit"]["rule"]["name"]),
        "<h2>Metrics</h2>",
        _metrics(report["metrics"], report["noise"]["units"]),
        "<h2>Views</h2>",
        '<p class="note">Axial, coronal and sagittal planes through the centre of the '
        "output volume; radiological convention (patient's right on the left); voxels "
        "drawn to scale.</p>",
        '<div class="figures">' + "".join(_figure(f) for f in figures) + "</div>",
        "<h2>Fit</h2>",
        _candidates(report["fit"]),
        '<div class="charts">' + "".join(charts) + "</div>",
        _fit_table(report["fit"]),
        "<h2>Methods</h2>",
        f"<p>{escape(methods)}</p>",
        "<h2>Parameters</h2>",
        _table(_flatten(report["provenance"]["config"])),
        "<h2>Provenance</h2>",
        _table(_provenance_rows(report)),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _headline(report: dict) -> str:
    fit, i, o = report["fit"], report["input"], report["output"]
    stop = (
        f"stopped by the {fit['rule']['name']} rule at iteration {fit.get('stop_iteration')}"
        if fit.get("stop_iteration")
        else f"ran to the {fit['stop_reason'].replace('_', ' ')} ({fit['iterations']} iterations)"
    )
    if fit["rule"]["name"] == "internal":
        stop = (
            f"learnt from its own slices for {fit['iterations']} steps, then back-projected "
            f"onto them (rms misfit {fit['rule']['rms_misfit']:.3g})"
        )
    if fit["rule"]["name"] == "sure":
        rule = fit["rule"]
        names = [k[5:] for k in rule if k.startswith("risk_") and k != "risk_prior"]
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in rule.get("stage_seconds", {}).items())
        stop = (
            f"returned the {rule['chosen']} estimate, the lowest risk (SURE) of "
            f"{', '.join(names)}; quality preset {rule.get('quality', 'default')}, "
            f"{fit['iterations'] if rule['members'] else 0} member steps"
            + (f" (stages: {stages})" if stages else "")
        )
    return (
        '<p class="headline">'
        f"{escape(i['modality'])} {'&times;'.join(map(str, i['shape']))} &rarr; "
        f"{'&times;'.join(map(str, o['shape']))} voxels of "
        f"{' &times; '.join(f'{s:.3g}' for s in o['spacing_mm'])} mm. "
        + (f"Result from iteration {fit['best_iteration']}; " if fit["method"] == "dip" else "")
        + f"{escape(stop)}; "
        f"{fit['seconds']:.1f} s on {escape(fit['device'])} ({escape(fit['mode'])}).</p>"
    )


def _candidates(fit: dict) -> str:
    """Guided denoising: each candidate's estimated risk, the one returned marked."""
    if "candidates" not in fit:
        return ""
    rows = "".join(
        f"<tr><th>{escape(c['name'])}</th><td>{_number(c['risk'], 4)}</td>"
        f"<td>{'returned' if c['returned'] else ''}</td></tr>"
        for c in fit["candidates"]
    )
    finals = ""
    if any(c["name"] == "smooth" for c in fit["candidates"]):
        pilot = "the guide" if fit["rule"].get("guide_pilots_final") else "the deep prior"
        finals = (
            f" final: the Bayes stage piloted by {pilot}; smooth: the same stage, "
            f"smoother (the pilot's covariance x {fit['rule'].get('smooth_scale', 0.6)}, "
            "every group weighted alike)."
        )
    share = fit["rule"].get("counted_share", 1.0)
    over = (
        f", over the {share:.0%} of the voxels that are not air (where the guide is above "
        f"{fit['rule']['air_sigmas']:g} noise sigmas; in air SURE is biased, and air is set "
        "to 0 by its own test)"
        if share < 1.0
        else ""
    )
    return (
        "<h3>Candidates</h3>"
        '<p class="note">Estimated mean squared error (SURE, stabilised units: the input '
        f"scores its noise variance, 1 when the noise level is exact){over}; the lowest is "
        f"returned.{finals}</p>"
        f'<table class="metrics"><tr><th>candidate</th><th>risk</th><th></th></tr>{rows}</table>'
    )


# what a clean run's checks found, by the rule that ended the fit
_PASSED = {
    "sure": "an estimate beat the input by its risk",
    "internal": "the result agrees with the measured slices",
}


def _flags(flags: list[dict], rule: str) -> str:
    if not flags:
        passed = _PASSED.get(rule, "the fit stopped by its rule")
        return f'<p class="ok">No warnings: {passed} and the residual looks like noise.</p>'

    items = "".join(f"<li>{escape(f['message'])}</li>" for f in flags)
    return f'<div class="warn"><strong>Check before use</strong><ul>{items}</ul></div>'


def _metrics(metrics: dict, units: str) -> str:
    present = [
        c
        for c in METRIC_COLUMNS
        if any(metrics[r].get(c[0]) is not None for r in ("input", "baseline", "restored"))
    ]
    arrows = {"higher": "&uarr;", "lower": "&darr;"}
    head = "".join(
        f'<th title="{better} is better">{label} {arrows[better]}</th>'
        for _, label, _, better in present
    )
    rows = []
    for name in ("input", "baseline", "restored"):
        cells = "".join(
            f"<td>{escape(_number(metrics[name].get(key), digits))}</td>"
            for key, _, digits, _ in present
        )
        rows.append(f"<tr><th>{name}</th>{cells}</tr>")
    notes = [
        f"noise &sigma; in {escape(units)}: a wavelet estimate of the noise left in each "
        "image, so any smoothing lowers it (and raises SNR); judge smoothing by the residual "
        "and the views",
        "foreground: " + escape(metrics["foreground_mask"]),
    ]
    if metrics["data_range"] is not None:
        notes.append(
            f"data range {metrics['data_range']:.6g} ({escape(metrics['data_range_method'])})"
        )
    residual = metrics["residual"]
    res_rows = [
        (k.replace("_", " "), _number(v, 4)) for k, v in residual.items() if k != "definition"
    ]
    # (values are escaped by _table)
    return (
        f'<table class="metrics"><tr><th></th>{head}</tr>{"".join(rows)}</table>'
        f'<p class="note">{"; ".join(notes)}. Arrows: which direction is better.</p>'
        f'<h3>Residual</h3><p class="note">{escape(residual["definition"])}</p>' + _table(res_rows)
    )


def _figure(figure: Figure) -> str:
    rows = "".join(
        f'<div class="label">{escape(label)}</div><img alt="{escape(label)}" src="{uri}">'
        for label, uri in figure.rows
    )
    return (
        f'<section class="figure"><h3>{escape(figure.title)}</h3>'
        f'<p class="note">{escape(figure.caption)}</p>{rows}</section>'
    )


def _fit_table(fit: dict) -> str:
    keys = (
        "iterations",
        "stop_iteration",
        "best_iteration",
        "stop_reason",
        "seconds",
        "seconds_per_iteration",
        "device",
        "mode",
        "slice_axis",
        "loss",
        "peak_gpu_memory_bytes",
        "peak_host_memory_bytes",
    )
    rows = [(k.replace("_", " "), _number(fit[k], 4)) for k in keys if k in fit]
    rows += [(f"rule {k.replace('_', ' ')}", _number(v, 4)) for k, v in fit["rule"].items()]
    return _table(rows)


def _provenance_rows(report: dict) -> list[tuple[str, str]]:
    p = report["provenance"]
    rows = [(f"{name} version", str(v)) for name, v in p["versions"].items()]
    rows += [
        ("command line", " ".join(p["command_line"])),
        ("seed", str(p["seed"])),
        (f"input sha256 ({p['input_checksum_scope']})", p["input_sha256"]),
        ("created (UTC)", p["created_utc"]),
    ]
    return rows


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((prefix + key, str(value)))
    return rows


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _number(value, digits: int) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return (
        f"{value:.{digits}g}"
        if abs(value) < 1e-3 or abs(value) >= 1e5
        else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    )
