"""dipmed against classical restoration, measured: `python benchmarks/run.py --size small`.

Cases (data from ../shared/data, never copied into the repository):
- MNI152 T1 template crop, Rician noise of 3, 5 and 9 % of the maximum: dipmed denoise
  (default settings) against BM4D, non-local means, TV and Gaussian smoothing (each at its
  best setting, chosen with the reference), PSNR and SSIM (whole crop and brain mask),
  seconds, iterations, and the gap between the automatic stop and the best iterate.
- Through-plane super-resolution x2 and x4 of the same crop (box slice profile) against
  linear and cubic interpolation, and x2 of thick slices with Rician noise of 5 %.
- The real head CT crop with Gaussian noise of 20 HU (denoising).

Writes benchmarks/results-<size>.json and rewrites benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import baselines  # noqa: E402
from baselines import denoisers, interpolators  # noqa: E402
from scipy.ndimage import convolve  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from dipmed.config import load_config  # noqa: E402
from dipmed.metrics import psnr, ssim  # noqa: E402
from dipmed.restoration.noise.estimate import add_noise  # noqa: E402
from dipmed.restoration.noise.vst import RicianVST  # noqa: E402
from dipmed.restoration.operators import Downsample, apply  # noqa: E402
from dipmed.restoration.restore import Task, restore  # noqa: E402
from dipmed.volume import Meta, Volume  # noqa: E402

SIZES = {  # crop shape (multiples of 16: the generator's grid), iteration cap
    "small": {"crop": (48, 48, 32), "cap": 500, "levels": (0.03, 0.05, 0.09)},
    "full": {"crop": (160, 192, 160), "cap": 2000, "levels": (0.03, 0.05, 0.09)},
}
CT_NOISE_HU = 20.0
GUIDED_OVERRIDES: dict = {}  # --smoke: a 2-step fit, to check the harness end to end


def crop_centre(array: np.ndarray, shape) -> np.ndarray:
    """The central block of `shape` (each side at most the array's own size)."""
    shape = [min(s, n) for s, n in zip(shape, array.shape, strict=True)]
    starts = [(n - s) // 2 for n, s in zip(array.shape, shape, strict=True)]
    return array[tuple(slice(a, a + s) for a, s in zip(starts, shape, strict=True))]


def run_dipmed(degraded, task: Task, clean, data_range, cap, modality, device):
    """dipmed SR with its defaults, run on to the cap to find the best iterate (oracle)."""
    config = load_config(None, device=device, **{"fit.max_iters": cap, "fit.run_past_stop": True})
    curve = []
    result = restore(
        Volume(degraded, np.diag([*map(float, task.factors), 1.0]), Meta(modality=modality)),
        task,
        config,
        monitor=lambda i, out: curve.append(psnr(out, clean, data_range)),
    )
    if result.method != "dip":  # internal sr: no iterates to score
        return {
            "method": "dipmed (internal sr)",
            "sigma": "own estimate",
            "estimate": result.volume.array,
            "seconds": result.seconds,
            "iterations": result.run.steps,
            "sigma_estimated": result.sigma,
        }
    fit = result.run.fit
    return {
        "method": "dipmed",
        "sigma": "own estimate",
        "estimate": result.volume.array,
        "seconds": result.seconds,
        "iterations": fit.iterations,
        "stop_reason": fit.stop_reason,
        "chosen_iteration": fit.best_iteration,
        "best_iteration": int(np.argmax(curve)) + 1,
        "best_iterate_psnr": float(max(curve)),
        "mode": result.run.mode,
        "sigma_estimated": result.sigma,
    }


def run_guided(
    noisy, clean, data_range, modality, device, sigma_true, guide="collaborative", quality=None
):
    """`dipmed denoise` at its default quality (or `quality`), its own noise estimate; scores
    every candidate, and logs each candidate's SURE beside its true squared error in the
    stabilised domain, and the seconds of each stage."""
    keys = {"guided.guide": guide, "guided.quality": quality, **GUIDED_OVERRIDES}
    config = load_config(None, device=device, **keys)
    result = restore(
        Volume(noisy, np.eye(4), Meta(modality=modality)), Task("denoise"), config, candidates=True
    )
    g = result.run
    candidates = {"input": noisy, **g.candidates}
    eligible = [k for k in ("input", "guide", "final", "smooth") if k in candidates]  # not "prior"
    scores = {k: psnr(v, clean, data_range) for k, v in candidates.items()}
    target, forward = _stabilised_truth(clean, result.sigma, modality, sigma_true)
    true_risk = {k: float(np.mean((forward(v) - target) ** 2)) for k, v in candidates.items()}
    return {
        "method": "dipmed" if guide == "collaborative" else "dipmed + BM4D guide",
        "quality": g.settings.quality,
        "stage_seconds": g.stage_seconds,
        "sigma": "own estimate",
        "estimate": result.volume.array,
        "uncertainty": result.uncertainty,
        "seconds": result.seconds,
        "iterations": g.steps,
        "chosen": g.chosen,
        "noise_source": g.noise_source,
        "noise_correlated": g.noise_correlated,
        "sigma_estimated": result.sigma,
        "sigma_true": sigma_true,
        "candidate_psnr": scores,
        "best_candidate": max(eligible, key=scores.get),
        "best_candidate_psnr": max(scores[k] for k in eligible),
        "sure": g.risks,
        "true_risk": true_risk,
    }


def _stabilised_truth(clean, sigma, modality, sigma_true=None):
    """The target of a denoiser in the stabilised domain and the map into it.

    MR: E[f(z / sigma) | nu] for z ~ Rice(nu, sigma_true), f the forward VST at the
    estimated `sigma` (what u's mean is, so what SURE's risk is measured against), by
    quadrature over the Rice density on a grid of nu; the map takes an estimate in image
    units back through the exact inverse's own table, so a candidate comes back to the
    stabilised value it had. (Before 2026-12-04 the target was the mean of 24 noise draws:
    its own variance, 1/24 of the noise's, inflated every "true" error by about 0.04.)
    CT: clean / sigma."""
    if modality != "MR":
        return clean / sigma, lambda v: v / sigma
    from scipy.stats import rice

    sigma_true = sigma if sigma_true is None else sigma_true
    vst = RicianVST(sigma)
    top = float(clean.max()) / sigma_true + 8.0
    t = np.linspace(0.0, top + 8.0, 6001)
    f = vst.forward(sigma_true * t).astype(np.float64)
    nu = np.linspace(0.0, top, 2001)
    expectation = np.empty_like(nu)
    for i, b in enumerate(nu):
        p = rice.pdf(t, b) if b > 0 else t * np.exp(-(t**2) / 2)
        expectation[i] = p @ f / p.sum()
    target = np.interp(clean / sigma_true, nu, expectation).astype(np.float32)
    d = np.linspace(0.0, float(f.max()), 20001)
    image = vst.inverse(d)  # monotone: the inverse's own table, read backwards
    return target, lambda v: np.interp(v, image, d).astype(np.float32)


def score(entry: dict, clean, data_range, mask) -> dict:
    estimate = entry.pop("estimate")
    uncertainty = entry.pop("uncertainty", None)
    entry.update(
        psnr=psnr(estimate, clean, data_range),
        ssim=ssim(estimate, clean, data_range),
        psnr_mask=psnr(estimate, clean, data_range, mask),
        ssim_mask=ssim(estimate, clean, data_range, mask),
    )
    if "best_iterate_psnr" in entry:
        entry["stop_gap_db"] = entry["best_iterate_psnr"] - entry["psnr"]
    if "best_candidate_psnr" in entry:
        entry["stop_gap_db"] = entry["best_candidate_psnr"] - entry["psnr"]
    if uncertainty is not None:
        error = np.abs(estimate - clean)
        entry["uncertainty_rank_correlation"] = float(
            spearmanr(uncertainty.ravel(), error.ravel())[0]
        )
        entry["uncertainty_mean_over_rmse"] = float(uncertainty.mean() / np.sqrt(np.mean(error**2)))
    return entry


def denoise_case(name, clean, noisy, sigma, data_range, mask, modality, args, extra=()):
    """Every denoiser on one input; `extra` adds measurements (lesion contrast)."""
    print(f"[{name}] noisy {psnr(noisy, clean, data_range):.2f} dB", flush=True)
    entries = [{"method": "noisy input", "estimate": noisy, "seconds": 0.0, "sigma": ""}]
    entries += denoisers(noisy, sigma, clean, data_range, modality, args.threads)
    entries.append(run_guided(noisy, clean, data_range, modality, args.device, sigma))
    fast = run_guided(noisy, clean, data_range, modality, args.device, sigma, quality="fast")
    entries.append({**fast, "method": "dipmed fast"})
    if args.bm4d_guide:
        entries.append(run_guided(noisy, clean, data_range, modality, args.device, sigma, "bm4d"))
    for entry in entries:
        for measure in extra:
            entry.update(measure(entry["estimate"]))
    scored = [score(e, clean, data_range, mask) for e in entries]
    for e in scored:
        print(
            f"   {e['method']:<22} {e['sigma']:<24} {e['psnr']:6.2f} dB {e['seconds']:7.1f} s",
            flush=True,
        )
    return {
        "case": name,
        "task": "denoise",
        "data_range": data_range,
        "sigma_true": sigma,
        "results": scored,
    }


def sr_case(name, clean, factor, data_range, mask, cap, device, noise=0.0, rng=None):
    """Thick slices (box profile), with Rician noise of `noise` x max added to them."""
    factors = (1, 1, factor)
    thick = apply(Downsample(factors), clean).astype(np.float32)
    if noise > 0:
        thick = add_noise(thick, noise, "rician", rng)
    print(f"[{name}] thick {thick.shape}", flush=True)
    entries = interpolators(thick, factors, clean, data_range)
    entries.append(
        run_dipmed(thick, Task("sr", factors=factors), clean, data_range, cap, "MR", device)
    )
    scored = [score(e, clean, data_range, mask) for e in entries]
    for e in scored:
        print(f"   {e['method']:<16} {e['psnr']:6.2f} dB  {e['seconds']:7.1f} s", flush=True)
    return {"case": name, "task": "sr", "data_range": data_range, "results": scored}


def machine(device: str) -> str:
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores"
    return (
        f"CPU only: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores"
    )


def crop_at(array: np.ndarray, start, shape) -> np.ndarray:
    return array[tuple(slice(a, a + n) for a, n in zip(start, shape, strict=True))]


def correlated_rician(clean, sigma, rng) -> np.ndarray:
    """Magnitude of clean + complex noise whose real and imaginary parts are white noise
    filtered by a small Gaussian kernel (std 0.7 voxel, 3x3x3), rescaled so that each
    voxel's noise std is exactly `sigma` (as parallel imaging or k-space filtering leave)."""
    axis = np.exp(-0.5 * (np.arange(-1, 2) / 0.7) ** 2)
    kernel = axis[:, None, None] * axis[None, :, None] * axis[None, None, :]
    kernel /= np.sqrt(np.sum(kernel**2))
    parts = [convolve(rng.normal(0, 1, clean.shape), kernel, mode="wrap") for _ in range(2)]
    return np.abs(clean + sigma * parts[0] + 1j * sigma * parts[1]).astype(np.float32)


def plant_lesion(clean, contrast=0.10, radius=1.5, count=8):
    """`count` spheres of `radius` voxels at +`contrast` of the local intensity, in the most
    homogeneous bright tissue (white matter), at least 9 voxels apart; returns the volume
    and a measure of the contrast each estimate keeps (the mean over the lesions, and each
    one: a single lesion's figure moves by about 0.1 with the noise draw)."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in clean.shape], indexing="ij"), -1)
    centres = _lesion_centres(clean, count, margin=int(radius) + 5, spacing=9)
    planted, lesions = clean.copy(), []
    for centre in centres:
        distance = np.linalg.norm(grid - centre, axis=-1)
        lesion, shell = distance <= radius, (distance > radius + 1) & (distance <= radius + 3)
        planted[lesion] *= 1 + contrast
        lesions.append((lesion, shell, planted[lesion].mean() - planted[shell].mean()))

    def kept(estimate):
        each = [float((estimate[a].mean() - estimate[b].mean()) / t) for a, b, t in lesions]
        return {"lesion_contrast_kept": float(np.mean(each)), "lesion_contrast_each": each}

    return planted, kept


def _lesion_centres(clean, count, *, margin, spacing):
    """The flattest bright voxels (local std over 5^3, intensity above the 80th percentile
    of the head), greedily kept when `spacing` voxels from every one already kept."""
    from scipy.ndimage import uniform_filter

    mean = uniform_filter(clean, 5)
    std = np.sqrt(np.maximum(uniform_filter(clean**2, 5) - mean**2, 0))
    inner = np.zeros(clean.shape, bool)
    inner[tuple(slice(margin, n - margin) for n in clean.shape)] = True
    bright = inner & (mean > np.percentile(clean[clean > 0.05], 80))
    order = np.argsort(np.where(bright, std, np.inf), axis=None)
    centres = []
    for flat in order[: int(bright.sum())]:
        point = np.array(np.unravel_index(flat, clean.shape))
        if all(np.linalg.norm(point - c) >= spacing for c in centres):
            centres.append(point)
        if len(centres) == count:
            break
    return centres


def _carried_over(path: Path, task: str, flag: str) -> list:
    """With --no-sr / --no-denoise: that task's cases from the previous run of this preset,
    marked as such."""
    if not path.exists():
        return []
    previous = json.loads(path.read_text())
    out = [c for c in previous["cases"] if c["task"] == task]
    for case in out:
        case.setdefault(
            "carried_over", f"`{flag}`: measured in an earlier run ({previous['machine']})"
        )
    return out


def denoise_inputs(mni, clean, ct_clean, preset, rng) -> list:
    """The denoising cases in order, as (name, clean, noisy, sigma, range, mask, modality);
    the noise is drawn from `rng` in this order (rerun_case.py replays it)."""
    out = []
    for level in preset["levels"]:
        noisy = add_noise(clean, level, "rician", rng)
        out.append((f"MNI T1, Rician {level:.0%}", clean, noisy, level, 1.0, clean > 0.05, "MR"))
    ct_noisy = add_noise(ct_clean, CT_NOISE_HU, "gaussian", rng)
    out.append(
        (
            f"head CT, Gaussian {CT_NOISE_HU:.0f} HU",
            ct_clean,
            ct_noisy,
            CT_NOISE_HU,
            float(ct_clean.max() - ct_clean.min()),
            ct_clean > -200,
            "CT",
        )
    )
    # top of the brain with air above it: the correlated noise's level can be read there
    top = crop_at(mni, (74, 92, 128), preset["crop"]).astype(np.float32)
    out.append(
        (
            "MNI T1, correlated Rician 5% (Gaussian kernel 0.7 voxel)",
            top,
            correlated_rician(top, 0.05, rng),
            0.05,
            1.0,
            top > 0.05,
            "MR",
        )
    )
    planted, _ = plant_lesion(clean)
    out.append(
        (
            "MNI T1 + up to 8 lesions (radius 1.5 voxels, +10 %), Rician 5%",
            planted,
            add_noise(planted, 0.05, "rician", rng),
            0.05,
            1.0,
            clean > 0.05,
            "MR",
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="threads for every method")
    parser.add_argument("--no-bm4d-guide", dest="bm4d_guide", action="store_false")
    parser.add_argument("--no-sr", dest="sr", action="store_false", help="skip the SR cases")
    parser.add_argument(
        "--no-denoise", dest="denoise", action="store_false", help="skip the denoising cases"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny crop, 2 steps: harness check")
    args = parser.parse_args()
    if args.smoke:
        GUIDED_OVERRIDES["guided.iterations"] = 2
        SIZES[args.size] = {**SIZES[args.size], "crop": (24, 24, 20), "cap": 3}
        baselines.AUTODEN_EPOCHS = 2
    torch.set_num_threads(args.threads)
    preset, start = SIZES[args.size], time.perf_counter()
    mni = nib.load(args.data / "mri_t1_mni152_2009a_1mm.nii.gz").get_fdata(dtype=np.float32)
    mni = (mni / mni.max()).astype(np.float32)
    clean = crop_centre(mni, preset["crop"]).astype(np.float32)
    mask = clean > 0.05  # the template is skull-stripped: brain = non-zero
    ct = nib.load(args.data / "ct_head_0051.nii.gz").get_fdata(dtype=np.float32)
    ct_clean = crop_centre(ct, preset["crop"]).astype(np.float32)
    rng = np.random.default_rng(2026)
    plain = argparse.Namespace(**{**vars(args), "bm4d_guide": False})
    cases = []
    inputs = denoise_inputs(mni, clean, ct_clean, preset, rng)  # draws noise even if skipped
    for index, (name, *case) in enumerate(inputs if args.denoise else []):
        extra = (plant_lesion(clean)[1],) if "lesion" in name else ()
        cases.append(denoise_case(name, *case, args if index < 4 else plain, extra=extra))
    if not args.denoise:
        cases += _carried_over(HERE / f"results-{args.size}.json", "denoise", "--no-denoise")
    if args.sr:
        for factor in (2, 4):
            cases.append(
                sr_case(
                    f"MNI T1, through-plane SR x{factor}",
                    clean,
                    factor,
                    1.0,
                    mask,
                    preset["cap"],
                    args.device,
                )
            )
        cases.append(
            sr_case(
                "MNI T1, through-plane SR x2, Rician 5%",
                clean,
                2,
                1.0,
                mask,
                preset["cap"],
                args.device,
                noise=0.05,
                rng=rng,
            )
        )
    else:
        cases += _carried_over(HERE / f"results-{args.size}.json", "sr", "--no-sr")
    report = {
        "size": args.size,
        "crop": preset["crop"],
        "machine": machine(args.device),
        "threads": args.threads,
        "torch": torch.__version__,
        "seconds_total": time.perf_counter() - start,
        "cases": cases,
    }
    if args.smoke:
        print(json.dumps(report, indent=1)[:3000])
        from results_md import _render

        print("\n".join(_render(report)))
        return
    (HERE / f"results-{args.size}.json").write_text(json.dumps(report, indent=1))
    from results_md import write_results

    write_results(HERE)
    print(f"done in {report['seconds_total']:.0f} s")


if __name__ == "__main__":
    main()
