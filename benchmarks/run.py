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

from baselines import denoisers, interpolators  # noqa: E402

from dipmed.config import load_config  # noqa: E402
from dipmed.metrics import psnr, ssim  # noqa: E402
from dipmed.noise import add_noise  # noqa: E402
from dipmed.operators import Downsample, apply  # noqa: E402
from dipmed.restore import Task, restore  # noqa: E402
from dipmed.volume import Meta, Volume  # noqa: E402

SIZES = {  # crop shape (multiples of 16: the generator's grid), iteration cap
    "small": {"crop": (48, 48, 32), "cap": 500, "levels": (0.03, 0.05, 0.09)},
    "full": {"crop": (160, 192, 160), "cap": 2000, "levels": (0.03, 0.05, 0.09)},
}
CT_NOISE_HU = 20.0


def crop_centre(array: np.ndarray, shape) -> np.ndarray:
    """The central block of `shape` (each side at most the array's own size)."""
    shape = [min(s, n) for s, n in zip(shape, array.shape, strict=True)]
    starts = [(n - s) // 2 for n, s in zip(array.shape, shape, strict=True)]
    return array[tuple(slice(a, a + s) for a, s in zip(starts, shape, strict=True))]


def run_dipmed(degraded: np.ndarray, task: Task, clean, data_range, cap, modality, device):
    """dipmed with its defaults, run on to the cap to find the best iterate (oracle)."""
    config = load_config(None, device=device, **{"fit.max_iters": cap, "fit.run_past_stop": True})
    curve = []
    result = restore(
        Volume(degraded, np.eye(4), Meta(modality=modality)),
        task,
        config,
        monitor=lambda i, out: curve.append(psnr(out, clean, data_range)),
    )
    best_iteration = int(np.argmax(curve)) + 1
    fit = result.fit
    return {
        "method": "dipmed",
        "estimate": result.volume.array,
        "seconds": fit.seconds,
        "iterations": fit.iterations,
        "stop_reason": fit.stop_reason,
        "chosen_iteration": fit.best_iteration,
        "best_iteration": best_iteration,
        "best_iterate_psnr": float(max(curve)),
        "mode": result.mode,
        "sigma_estimated": result.sigma,
        "peak_memory_bytes": fit.peak_memory_bytes,
        "curve_every_10": [round(v, 3) for v in curve[9::10]],
    }


def score(entry: dict, clean, data_range, mask) -> dict:
    estimate = entry.pop("estimate")
    entry.update(
        psnr=psnr(estimate, clean, data_range),
        ssim=ssim(estimate, clean, data_range),
        psnr_mask=psnr(estimate, clean, data_range, mask),
        ssim_mask=ssim(estimate, clean, data_range, mask),
    )
    if "best_iterate_psnr" in entry:
        entry["stop_gap_db"] = entry["best_iterate_psnr"] - entry["psnr"]
    return entry


def denoise_case(name, clean, noisy, sigma, data_range, mask, cap, modality, device):
    print(f"[{name}] noisy {psnr(noisy, clean, data_range):.2f} dB", flush=True)
    entries = [{"method": "noisy input", "estimate": noisy, "seconds": 0.0}]
    entries += denoisers(noisy, sigma, clean, data_range)
    entries.append(run_dipmed(noisy, Task("denoise"), clean, data_range, cap, modality, device))
    scored = [score(e, clean, data_range, mask) for e in entries]
    for e in scored:
        print(f"   {e['method']:<16} {e['psnr']:6.2f} dB  {e['seconds']:7.1f} s", flush=True)
    return {"case": name, "task": "denoise", "data_range": data_range, "results": scored}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    preset, start = SIZES[args.size], time.perf_counter()
    mni = nib.load(args.data / "mri_t1_mni152_2009a_1mm.nii.gz").get_fdata(dtype=np.float32)
    clean = crop_centre(mni / mni.max(), preset["crop"]).astype(np.float32)
    mask = clean > 0.05  # the template is skull-stripped: brain = non-zero
    cases, rng = [], np.random.default_rng(2026)
    for level in preset["levels"]:
        noisy = add_noise(clean, level, "rician", rng)
        cases.append(
            denoise_case(
                f"MNI T1, Rician {level:.0%}",
                clean,
                noisy,
                level,
                1.0,
                mask,
                preset["cap"],
                "MR",
                args.device,
            )
        )
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
    ct = nib.load(args.data / "ct_head_0051.nii.gz").get_fdata(dtype=np.float32)
    ct_clean = crop_centre(ct, preset["crop"]).astype(np.float32)
    ct_noisy = add_noise(ct_clean, CT_NOISE_HU, "gaussian", rng)
    ct_range = float(ct_clean.max() - ct_clean.min())
    cases.append(
        denoise_case(
            f"head CT, Gaussian {CT_NOISE_HU:.0f} HU",
            ct_clean,
            ct_noisy,
            CT_NOISE_HU,
            ct_range,
            ct_clean > -200,
            preset["cap"],
            "CT",
            args.device,
        )
    )
    report = {
        "size": args.size,
        "crop": preset["crop"],
        "machine": machine(args.device),
        "torch": torch.__version__,
        "seconds_total": time.perf_counter() - start,
        "cases": cases,
    }
    (HERE / f"results-{args.size}.json").write_text(json.dumps(report, indent=1))
    from results_md import write_results

    write_results(HERE)
    print(f"done in {report['seconds_total']:.0f} s")


if __name__ == "__main__":
    main()
