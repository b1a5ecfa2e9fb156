"""Render benchmarks/RESULTS.md from the results-*.json files the benchmark wrote."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

SIMPLE = ("Gaussian", "TV (Chambolle)", "NLM")


def write_results(folder: Path) -> None:
    parts = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/run.py`; every figure below was measured on the machine "
        "named with it. PSNR and SSIM: higher is better; data_range stated per case; "
        "'mask' = brain (MNI) or head (CT, > -200 HU). Baselines use their best setting "
        "chosen with the reference (an oracle in their favour); dipmed uses its defaults "
        "and stops without the reference. 'best iterate' is found with the reference "
        "(benchmark only); 'gap' = best iterate minus the automatic stop, in dB. "
        "SSIM: Gaussian window (sigma 1.5), as MONAI computes it; 'SSIM mask' averages the "
        "SSIM map over the mask (borders included). The small MNI crop lies wholly inside "
        "the brain mask, so there its mask PSNR equals the whole-crop PSNR.",
        "",
    ]
    for path in sorted(folder.glob("results-*.json")):
        parts += _render(json.loads(path.read_text()))
    if not (folder / "results-full.json").exists():
        parts += [
            "## Preset `full` (GPU)",
            "",
            "Not run yet: no GPU has been lent to a session that ran it. It would record "
            "seconds, peak GPU memory and the bf16 vs fp32 PSNR difference.",
            "",
        ]
    (folder / "RESULTS.md").write_text("\n".join(parts) + "\n")


def _render(report: dict) -> list[str]:
    lines = [
        f"## Preset `{report['size']}`: crop {tuple(report['crop'])}",
        "",
        f"Machine: {report['machine']}; torch {report['torch']}; "
        f"total {report['seconds_total']:.0f} s.",
        "",
    ]
    gaps = []
    for case in report["cases"]:
        lines += [
            f"### {case['case']} (data_range {case['data_range']:.4g})",
            "",
            "| method | PSNR | SSIM | PSNR mask | SSIM mask | seconds | iterations |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in case["results"]:
            detail = ""
            if r["method"] == "dipmed":
                gaps.append(r["stop_gap_db"])
                detail = (
                    f"{r['iterations']} ({r['stop_reason']}); best iterate "
                    f"{r['best_iteration']}: {r['best_iterate_psnr']:.2f} dB, "
                    f"gap {r['stop_gap_db']:.2f} dB"
                )
            lines.append(
                f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                f"{r['psnr_mask']:.2f} | {r['ssim_mask']:.4f} | "
                f"{r['seconds']:.1f} | {detail} |"
            )
        lines += ["", _verdict(case), ""]
    if gaps:
        lines += [
            f"Median gap between the automatic stop and the best iterate: "
            f"{statistics.median(gaps):.2f} dB over {len(gaps)} cases.",
            "",
        ]
    return lines


def _verdict(case: dict) -> str:
    by = {r["method"]: r for r in case["results"]}
    ours = by.get("dipmed")
    if ours is None:
        return ""
    if case["task"] == "sr":
        cubic = by["cubic"]
        return (
            f"dipmed vs cubic: {ours['psnr'] - cubic['psnr']:+.2f} dB "
            f"({ours['seconds']:.0f} s vs {cubic['seconds']:.2f} s)."
        )
    simple = max((by[m] for m in SIMPLE if m in by), key=lambda r: r["psnr"])
    text = (
        f"dipmed vs the best simple filter ({simple['method']}): "
        f"{ours['psnr'] - simple['psnr']:+.2f} dB."
    )
    if "BM4D" in by:
        bm4d = by["BM4D"]
        text += (
            f" vs BM4D: {ours['psnr'] - bm4d['psnr']:+.2f} dB, "
            f"{ours['seconds']:.0f} s vs {bm4d['seconds']:.0f} s."
        )
    return text
