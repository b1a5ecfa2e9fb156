"""Render benchmarks/RESULTS.md from the results-*.json files the benchmark wrote."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

OPEN = ("Gaussian", "TV", "NLM", "dipy", "ANTs", "auto-denoise")  # open peers (first word)


def write_results(folder: Path) -> None:
    parts = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/run.py`; every figure below was measured on the machine "
        "named with it. PSNR and SSIM: higher is better; data_range stated per case; "
        "'mask' = brain (MNI) or head (CT, > -200 HU). Baselines use their best setting "
        "chosen with the reference where the 'noise level given' column says 'tuned' (an "
        "oracle in their favour); otherwise each gets the noise level the column names: "
        "the true one, its own estimate, or none (the tool estimates it inside). dipmed "
        "always uses its defaults and its own estimate. 'gap' = best candidate (or best "
        "iterate), found with the reference, minus the returned estimate, in dB. "
        "SSIM: Gaussian window (sigma 1.5), as MONAI computes it; 'SSIM mask' averages the "
        "SSIM map over the mask (borders included). The small MNI crop lies wholly inside "
        "the brain mask, so there its mask PSNR equals the whole-crop PSNR.",
        "",
    ]
    for path in sorted(folder.glob("results-*.json")):
        report = json.loads(path.read_text())
        if isinstance(report, dict) and "size" in report:  # a crop preset (run.py)
            parts += _render(report)
    if not (folder / "results-full.json").exists():
        parts += [
            "## Preset `full` (GPU)",
            "",
            "Not run on crops. Whole volumes on a lent H200 (seconds, peak GPU memory, bf16 "
            "vs fp32): benchmarks/README.md, section 'On a GPU', and results-whole.json.",
            "",
        ]
    (folder / "RESULTS.md").write_text("\n".join(parts) + "\n")


def _render(report: dict) -> list[str]:
    lines = [
        f"## Preset `{report['size']}`: crop {tuple(report['crop'])}",
        "",
        f"Machine: {report['machine']}; {report.get('threads', '?')} threads for every "
        f"method; torch {report['torch']}; total {report['seconds_total']:.0f} s.",
        "",
    ]
    gaps = []
    for case in report["cases"]:
        lesion = any("lesion_contrast_kept" in r for r in case["results"])
        lines += [f"### {case['case']} (data_range {case['data_range']:.4g})", ""]
        if "rerun" in case:
            lines += [f"This case was {case['rerun']}.", ""]
        if "carried_over" in case:
            lines += [f"Not re-run this time: {case['carried_over']}.", ""]
        if lesion:
            count = len(case["results"][0].get("lesion_contrast_each", [0]))
            lines += [
                f"{count} lesions fit this crop; contrast kept = the mean over them of "
                "(lesion mean - shell mean) / the true difference (1 = all kept).",
                "",
            ]
        lines += [
            "| method | noise level given | PSNR | SSIM | PSNR mask | SSIM mask | seconds |"
            + (" lesion contrast kept |" if lesion else "")
            + " notes |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
            + (" ---: |" if lesion else "")
            + " --- |",
        ]
        for r in case["results"]:
            if "stop_gap_db" in r:
                gaps.append(r["stop_gap_db"])
            kept = f" {r['lesion_contrast_kept']:.2f} |" if lesion else ""
            lines.append(
                f"| {r['method']} | {r.get('sigma', '')} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                f"{r['psnr_mask']:.2f} | {r['ssim_mask']:.4f} | {r['seconds']:.1f} |{kept} "
                f"{_notes(r)} |"
            )
        lines += ["", _verdict(case), ""]
        lines += _risk_lines(case)
    if gaps:
        lines += [
            f"Median gap between the returned estimate and the best candidate (guided "
            f"denoising: input, guide, final; SR: the best iterate), found with the "
            f"reference: {statistics.median(gaps):.2f} dB over {len(gaps)} runs.",
            "",
        ]
    return lines


def _notes(r: dict) -> str:
    if "chosen" in r:
        sigma = f"sigma {r['sigma_estimated']:.4g} ({r['noise_source']}"
        sigma += ", correlated)" if r["noise_correlated"] else ")"
        return (
            f"returned {r['chosen']} (best candidate {r['best_candidate']}, gap "
            f"{r['stop_gap_db']:.2f} dB); {sigma}; uncertainty rank r "
            f"{r['uncertainty_rank_correlation']:.2f}, mean/RMSE "
            f"{r['uncertainty_mean_over_rmse']:.2f}"
        )
    if "best_iterate_psnr" in r:
        return (
            f"{r['iterations']} iterations ({r['stop_reason']}); best iterate "
            f"{r['best_iteration']}: {r['best_iterate_psnr']:.2f} dB, gap {r['stop_gap_db']:.2f}"
        )
    return f"parameter {r['parameter']}" if r.get("parameter") is not None else ""


def _risk_lines(case: dict) -> list[str]:
    out = []
    for r in case["results"]:
        if "sure" in r:
            pairs = ", ".join(
                f"{k} {r['sure'][k]:.4f} vs {r['true_risk'][k]:.4f}"
                for k in ("guide", "final", "smooth")
                if k in r["sure"]
            )
            if "prior" in r["sure"]:  # not a candidate: logged
                # SURE members (correlated noise) hold a half out; a recorrupted member
                # trains on every voxel (its risk misses what its weights learned of u)
                where = "held-out half" if r.get("noise_correlated") else "at its last weights"
                pairs += (
                    f"; members' mean ({where}) {r['sure']['prior']:.4f} vs "
                    f"{r['true_risk']['prior']:.4f}"
                )
            if r.get("stage_seconds"):
                pairs += "; seconds: " + ", ".join(
                    f"{k} {v:.1f}" for k, v in r["stage_seconds"].items()
                )
            out.append(
                f"- {r['method']}: SURE vs true squared error per voxel (stabilised "
                f"units, input = {r['sure'].get('input', 1.0):.3f}): {pairs}."
            )
    return out + ([""] if out else [])


def _verdict(case: dict) -> str:
    results = case["results"]
    ours = next((r for r in results if r["method"] == "dipmed"), None)
    if ours is None:
        return ""
    if case["task"] == "sr":
        cubic = next(r for r in results if r["method"] == "cubic")
        return (
            f"dipmed vs cubic: {ours['psnr'] - cubic['psnr']:+.2f} dB "
            f"({ours['seconds']:.0f} s vs {cubic['seconds']:.2f} s)."
        )
    text = []
    opens = [r for r in results if r["method"].split(" ")[0] in OPEN]
    if opens:
        best = max(opens, key=lambda r: r["psnr"])
        text.append(
            f"dipmed vs the best open peer ({best['method']}, {best['sigma']}): "
            f"{ours['psnr'] - best['psnr']:+.2f} dB."
        )
    bm4d = [r for r in results if r["method"].startswith("BM4D")]
    if bm4d:
        best = max(bm4d, key=lambda r: r["psnr"])
        text.append(
            f"vs the best BM4D ({best['method']}, {best['sigma']}): "
            f"{ours['psnr'] - best['psnr']:+.2f} dB, {ours['seconds']:.0f} s vs "
            f"{best['seconds']:.0f} s."
        )
    fast = next((r for r in results if r["method"] == "dipmed fast"), None)
    if fast and bm4d:
        best = max(bm4d, key=lambda r: r["psnr"])
        text.append(
            f"dipmed fast vs the best BM4D: {fast['psnr'] - best['psnr']:+.2f} dB, "
            f"{fast['seconds']:.1f} s vs {best['seconds']:.1f} s."
        )
    guided = next((r for r in results if r["method"] == "dipmed + BM4D guide"), None)
    if guided and bm4d:
        text.append(
            f"dipmed + BM4D guide vs the best BM4D: "
            f"{guided['psnr'] - max(r['psnr'] for r in bm4d):+.2f} dB."
        )
    return " ".join(text)
