"""Whole volumes on this machine: `python benchmarks/whole.py CASE [--threads 2]`.

CASE: mni-denoise (the whole MNI T1, Rician 5 %), mni-sr (the MNI T1 resampled to 1.5 mm
slices is the reference; 6 mm slices, box-averaged by 4, are the input of `--factor 1,1,4`),
ct (the whole head CT, Gaussian 20 HU) or ct-big (a 512x512x300 CT made from it by
trilinear zoom, Gaussian 20 HU); ct-crop (96x96x48 of it) checks the script in a minute.
`--cli` runs the dipmed command itself (files, checkpoint, report and uncertainty map
included) instead of `restore` in a child: what a user's run costs. `--set KEY=VALUE`
(repeatable) gives dipmed a config key; the result is stored under its own key.

dipmed runs in a child process with its default settings, as `dipmed denoise` / `sr` would
(the same `restore` call and progress printer; the candidates are scored too): seconds to
the first progress line (imports included), every stage's start, total seconds, peak RSS
(the child's rusage), PSNR of the result (whole volume and brain or head mask) and of the
guide at the time it was ready: a PSNR-against-seconds curve. BM4D (VST + its own sigma
estimate, as on the crops, and with the true sigma), for MR dipy's non-local means (true
sigma and its own estimate) and ANTs' denoise_image (its own venv: benchmarks/setup_peers.sh;
their seconds as they time themselves, imports left out), or cubic/linear interpolation,
run on the same input, with the same threads. Results go to results-whole.json (one entry per
case, replaced when re-run) and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DATA = Path(os.environ.get("DIPMED_DATA", HERE.parent.parent / "shared" / "data"))
CASES = ("mni-denoise", "mni-sr", "ct", "ct-big", "ct-crop")


def make_case(name: str, rng: np.random.Generator):
    """(clean, degraded, modality, factors, sigma_true, mask, data_range)."""
    from dipmed.restoration.noise.estimate import add_noise
    from dipmed.restoration.operators import Downsample, apply

    if name.startswith("mni"):
        clean = nib.load(DATA / "mri_t1_mni152_2009a_1mm.nii.gz").get_fdata(dtype=np.float32)
        clean = (clean / clean.max()).astype(np.float32)
        if name == "mni-sr":  # 1.5 mm reference, 6 mm slices: a box of 4
            from scipy.ndimage import zoom

            clean = zoom(clean, (1, 1, 1 / 1.5), order=1).astype(np.float32)
            clean = clean[..., : clean.shape[2] // 4 * 4]
            thick = apply(Downsample((1, 1, 4)), clean).astype(np.float32)
            return clean, thick, "MR", (1, 1, 4), 0.0, clean > 0.05, 1.0
        mask = clean > 0.05
        noisy = add_noise(clean, 0.05, "rician", rng).astype(np.float32)
        return clean, noisy, "MR", (1, 1, 1), 0.05, mask, 1.0
    ct = nib.load(DATA / "ct_head_0051.nii.gz").get_fdata(dtype=np.float32)
    if name == "ct-big":
        from scipy.ndimage import zoom

        ct = zoom(ct, [512 / ct.shape[0], 512 / ct.shape[1], 300 / ct.shape[2]], order=1)
    if name == "ct-crop":  # a minute's check of this script
        ct = ct[80:176, 80:176, 30:78]
    clean = ct.astype(np.float32)
    noisy = (clean + rng.normal(0, 20.0, clean.shape)).astype(np.float32)
    mask = clean > -500  # the head
    return clean, noisy, "CT", (1, 1, 1), 20.0, mask, float(np.ptp(clean))


def child(args) -> None:
    """In the child: restore with default settings, score, print JSON on the last line."""
    import torch

    from dipmed.config import load_config
    from dipmed.metrics import psnr
    from dipmed.progress import ProgressPrinter
    from dipmed.restoration.restore import Task, memory_plan, restore
    from dipmed.restoration.runtime.events import Stage
    from dipmed.volume import Meta, Volume

    started = float(args.started)
    printer = ProgressPrinter(label="dipmed", every=50)
    printer(Stage("reading the input"))
    torch.set_num_threads(args.threads)
    degraded = nib.load(args.degraded).get_fdata(dtype=np.float32)
    factors = tuple(int(f) for f in args.factors.split(","))
    task = Task("sr" if max(factors) > 1 else "denoise", factors=factors)
    config = load_config(
        None,
        device=args.device,
        sr_method=args.sr_method,
        **{"guided.precision": args.precision, "guided.quality": args.quality},
        **dict(_setting(kv) for kv in args.set),
    )
    stages = []

    def progress(event):
        if isinstance(event, Stage) and (not stages or stages[-1][0] != event.name):
            stages.append((event.name, time.time() - started))
        printer(event)

    volume = Volume(degraded, nib.load(args.degraded).affine, Meta(modality=args.modality))
    plan = memory_plan(volume, task, config) if task.kind == "denoise" else None
    result = restore(volume, task, config, progress=progress, candidates=True)
    seconds = time.time() - started
    printer.close()
    clean = nib.load(args.clean).get_fdata(dtype=np.float32)
    mask = clean > args.mask_above
    out = {
        "seconds": seconds,
        "stages": stages,
        "psnr": psnr(result.volume.array, clean, args.range),
        "psnr_mask": psnr(result.volume.array, clean, args.range, mask),
        "chosen": getattr(result.run, "chosen", None),
        "plan": None
        if plan is None
        else {
            "patch": plan.patch,
            "predicted_gb": plan.predicted_gb,
            "fitted": plan.fitted,
            "pairs": plan.pairs,
        },
        "sigma_estimated": result.sigma,
        "device": result.device,
        "precision": args.precision,
        "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30
        if torch.cuda.is_available()
        else None,
    }
    candidates = getattr(result.run, "candidates", {})
    out["candidates"] = {k: psnr(v, clean, args.range) for k, v in candidates.items()}
    guide_done = next((t for name, t in stages if name.startswith("guide's risk")), None)
    out["curve"] = [(0.0, psnr(degraded, clean, args.range))] if task.kind == "denoise" else []
    if guide_done is not None and "guide" in candidates:
        out["curve"].append((guide_done, out["candidates"]["guide"]))
    out["curve"].append((seconds, out["psnr"]))
    print(json.dumps(out))


def _setting(kv: str) -> tuple:
    """`--set KEY=VALUE` as (key, value), the value read as YAML (as the config file is)."""
    import yaml

    key, _, text = kv.partition("=")
    return key, yaml.safe_load(text)


def run_dipmed(folder: Path, clean, degraded, modality, factors, mask_above, data_range, args):
    spacing = np.array([1.0, 1.0, 1.5 if factors[2] > 1 else 1.0])  # mni-sr: 1.5 mm slices
    nib.save(nib.Nifti1Image(clean, np.diag([*spacing, 1.0])), folder / "clean.nii")
    thick = np.diag([*(spacing * factors), 1.0])  # the acquired grid: 6 mm slices for mni-sr
    nib.save(nib.Nifti1Image(degraded, thick), folder / "degraded.nii")
    started = time.time()
    command = [
        sys.executable, __file__, "child", "--clean", str(folder / "clean.nii"),
        "--degraded", str(folder / "degraded.nii"), "--modality", modality,
        "--factors", ",".join(map(str, factors)), "--range", str(data_range),
        "--mask-above", str(mask_above), "--threads", str(args.threads), "--started", str(started),
        "--device", args.device, "--precision", args.precision, "--sr-method", args.sr_method,
        "--quality", args.quality, *(f"--set={kv}" for kv in args.set),
    ]  # fmt: skip
    if args.cli:  # what a user runs: the command, its files, report and checkpoint included
        (folder / "degraded.json").write_text(json.dumps({"Modality": modality}))
        kind = ["sr", "--factor", ",".join(map(str, factors))] if max(factors) > 1 else ["denoise"]
        command = [
            sys.executable, "-m", "dipmed", *kind, str(folder / "degraded.nii"),
            str(folder / "restored.nii"), "--threads", str(args.threads), "--device", args.device,
            "--report", str(folder / "report"), "--quality", args.quality,
            *(["--uncertainty", str(folder / "uncertainty.nii")] if max(factors) == 1 else []),
        ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []

    def read():
        for line in proc.stderr:
            lines.append((time.time() - started, line.rstrip()))
            sys.stderr.write(f"[{lines[-1][0]:7.1f}s] {line}")

    peaks: dict[str, float] = {}  # the child's RSS, sampled, by the stage it was in

    def sample():
        while proc.poll() is None:
            stage = _stage_of(lines[-1][1]) if lines else "start"
            peaks[stage] = max(peaks.get(stage, 0.0), _rss_gb(proc.pid))
            time.sleep(0.2)

    reader = threading.Thread(target=read)
    reader.start()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if proc.returncode != 0:
        raise SystemExit(f"dipmed child failed ({proc.returncode})")
    out = (
        _scored_cli(folder, lines, started, args, mask_above, data_range)
        if args.cli
        else json.loads(stdout.strip().splitlines()[-1])
    )
    out["first_line_s"] = lines[0][0] if lines else None
    out["longest_silence_s"] = max(
        (b[0] - a[0] for a, b in zip(lines, lines[1:], strict=False)), default=None
    )
    out["peak_rss_gb"] = usage.ru_maxrss / 2**20  # KiB on Linux
    out["stage_peaks_gb"] = {k: round(v, 3) for k, v in peaks.items() if v > 0}
    if out.get("plan"):  # the memory plan's prediction against the measured peak
        from dipmed.restoration.runtime.memory import MODEL

        out["plan"]["error"] = out["plan"]["predicted_gb"] / out["peak_rss_gb"] - 1
        out["plan"]["model"] = MODEL  # the memory model (and code) it was measured against
    return out


def _rss_gb(pid: int) -> float:
    """Resident memory of a running process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(t.split()[1]) for t in f if t.startswith("VmRSS")) / 2**20
    except (OSError, StopIteration):
        return 0.0


def _stage_of(line: str) -> str:
    """A progress line's stage: its text after the label, without counts and times."""
    text = line.split(": ", 1)[-1]
    return re.split(r"[,0-9]| elapsed| iteration", text)[0].strip() or "fit"


def _scored_cli(folder: Path, lines, started: float, args, mask_above, data_range) -> dict:
    """The command's output scored in this process (the child is the CLI itself)."""
    from dipmed.metrics import psnr

    restored = nib.load(folder / "restored.nii").get_fdata(dtype=np.float32)
    clean = nib.load(folder / "clean.nii").get_fdata(dtype=np.float32)
    mask = clean > mask_above
    found = (re.search(r"(\d+)\^3 patches, about ([0-9.]+) GB", t) for _, t in lines)
    planned = next((m for m in found if m), None)
    report = json.loads((folder / "report" / "report.json").read_text())
    return {
        "command": "dipmed CLI (--report, --uncertainty)",
        "seconds": time.time() - started,
        "psnr": psnr(restored, clean, data_range),
        "psnr_mask": psnr(restored, clean, data_range, mask),
        "chosen": ((report.get("fit") or {}).get("rule") or {}).get("chosen"),
        "plan": None
        if planned is None
        else {"patch": int(planned.group(1)), "predicted_gb": float(planned.group(2))},
        "device": args.device,
        "precision": args.precision,
        "stages": [(t, text) for t, text in lines if "iteration" not in text][:40],
        "curve": [],
    }


def run_peers(case, clean, degraded, modality, factors, sigma, mask, data_range, threads):
    from dipmed.metrics import psnr

    rows = []

    def scored(name, given, estimate, seconds, **extra):
        rows.append({
            "method": name, "sigma": given, "seconds": seconds,
            "psnr": psnr(estimate, clean, data_range),
            "psnr_mask": psnr(estimate, clean, data_range, mask), **extra,
        })  # fmt: skip
        print(f"   {name:28s} {given:14s} {rows[-1]['psnr']:6.2f} dB "
              f"{seconds:7.1f} s", flush=True)  # fmt: skip

    def timed(name, given, fn):
        start = time.time()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        estimate = fn()
        seconds = time.time() - start
        peak = max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 2**20
        scored(name, given, estimate, seconds, peak_rss_gb_process=peak)

    if max(factors) > 1:  # as on the crops: voxels tile the same extent
        from scipy.ndimage import zoom

        for order, name in ((1, "linear"), (3, "cubic")):
            timed(name, "-", lambda o=order: zoom(
                degraded, factors, order=o, grid_mode=True, mode="nearest"))  # fmt: skip
        return rows
    import bm4d

    from dipmed.restoration.noise.estimate import estimate_noise
    from dipmed.restoration.noise.vst import RicianVST

    own = float(estimate_noise(degraded, modality))
    for given, s in (("true", sigma), ("own estimate", own)):
        if modality == "MR":
            vst = RicianVST(s)
            timed("BM4D + VST", given, lambda v=vst: v.inverse(bm4d.bm4d(v.forward(degraded), 1.0)))
        else:
            timed("BM4D", given, lambda s=s: bm4d.bm4d(degraded, s).astype(np.float32))
    from baselines import nonlocal_peers  # MR: dipy's and ANTs' non-local means, own timing

    for entry in nonlocal_peers(degraded, sigma, modality, threads, dip=False):
        scored(entry["method"], entry["sigma"], entry["estimate"], entry["seconds"])
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        parser = argparse.ArgumentParser()
        for name in ("--clean", "--degraded", "--modality", "--factors", "--started"):
            parser.add_argument(name, required=True)
        parser.add_argument("--range", type=float, required=True)
        parser.add_argument("--mask-above", type=float, required=True)
        parser.add_argument("--threads", type=int, default=2)
        parser.add_argument("--device", default="auto")
        parser.add_argument("--precision", default="fp32")
        parser.add_argument("--sr-method", default="auto")
        parser.add_argument("--quality", default="default")
        parser.add_argument("--set", action="append", default=[])
        child(parser.parse_args(sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-peers", dest="peers", action="store_false")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (dipmed's)")
    parser.add_argument("--precision", default="fp32", help="the members' fp32 | bf16")
    parser.add_argument("--sr-method", default="auto", help="sr: auto | internal | dip")
    parser.add_argument("--cli", action="store_true", help="run the dipmed command itself")
    parser.add_argument("--quality", default="default", help="fast | default | best")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a config key for dipmed (e.g. guided.recorruptions=24); the result's key says it",
    )  # fmt: skip
    args = parser.parse_args()
    if args.cli and args.set:
        parser.error("--set applies to the child's restore call, not to --cli")
    import torch

    torch.set_num_threads(args.threads)
    clean, degraded, modality, factors, sigma, mask, data_range = make_case(
        args.case, np.random.default_rng(2026)
    )
    mask_above = 0.05 if modality == "MR" else -500.0
    print(f"[{args.case}] {degraded.shape} -> {clean.shape}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        dipmed = run_dipmed(
            Path(tmp), clean, degraded, modality, factors, mask_above, data_range, args
        )
    print(json.dumps({k: v for k, v in dipmed.items() if k != "stages"}), flush=True)
    peers = (
        run_peers(args.case, clean, degraded, modality, factors, sigma, mask, data_range,
                  args.threads) if args.peers else []
    )  # fmt: skip
    path = HERE / "results-whole.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    gpu = torch.cuda.get_device_name() if dipmed.get("device", "").startswith("cuda") else None
    key = args.case if gpu is None else f"{args.case}@gpu-{args.precision}"
    if args.sr_method != "auto":
        key += f"-{args.sr_method}"
    if args.cli:
        key += "@cli"
    if args.quality != "default":
        key += f"@{args.quality}"
    base, key = key, key + "".join(f"@{kv}" for kv in args.set)
    if not args.peers:  # --no-peers keeps the peers measured before on the same input
        peers = results.get(key, {}).get("peers") or results.get(base, {}).get("peers", [])
    results[key] = {
        "shape_in": list(degraded.shape), "shape_out": list(clean.shape),
        "modality": modality, "factors": list(factors), "sigma_true": sigma,
        "threads": args.threads, "dipmed": dipmed, "peers": peers,
        **({"peers_from": "an earlier run (--no-peers)"} if not args.peers and peers else {}),
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}"
        + (f", {gpu}" if gpu else ""),
    }  # fmt: skip
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
