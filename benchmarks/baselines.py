"""What users run instead of dipmed, each at its documented or best setting, on the same input.

Every entry says which noise level the tool was given ("sigma"): the true one, its own
estimate, none (the tool estimates inside), or a parameter tuned with the reference (an
oracle in the tool's favour). Peers whose pins clash with dipmed's run in their own
virtual environments (benchmarks/setup_peers.sh), as subprocesses on NIfTI files.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from dipmed.metrics import psnr
from dipmed.restoration.noise.vst import RicianVST

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
AUTODEN_EPOCHS = 300  # its README's 1024 would take ~10 min per crop on 2 cores


def best_of(name: str, run: Callable[[float], np.ndarray], grid, clean, data_range, sigma):
    """Run `run(p)` for each p in `grid`; keep the best PSNR (and the time of that run)."""
    best = None
    for parameter in grid:
        start = time.perf_counter()
        estimate = run(parameter)
        seconds = time.perf_counter() - start
        score = psnr(estimate, clean, data_range)
        if best is None or score > best["psnr"]:
            best = _entry(name, estimate, seconds, sigma, parameter=parameter)
            best["psnr"] = score
    return best


def _entry(name, estimate, seconds, sigma, **extra) -> dict:
    return {"method": name, "estimate": estimate, "seconds": seconds, "sigma": sigma, **extra}


def _timed(name: str, sigma: str, run: Callable[[], np.ndarray]) -> dict:
    start = time.perf_counter()
    estimate = np.asarray(run(), np.float32)
    return _entry(name, estimate, time.perf_counter() - start, sigma)


def denoisers(noisy, sigma, clean, data_range, modality: str, threads: int) -> list:
    """Classical and peer denoisers; MR noise is Rician, CT noise Gaussian."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, estimate_sigma

    rician = modality == "MR"
    own = float(estimate_sigma(noisy))
    tuned = "tuned with the reference"
    scale = float(np.abs(noisy).max())
    results = [
        best_of(
            "Gaussian",
            lambda s: gaussian_filter(noisy, s),
            [0.5, 0.75, 1.0, 1.25, 1.5],
            clean,
            data_range,
            tuned,
        ),
        best_of(
            "TV (Chambolle)",
            lambda w: scale * denoise_tv_chambolle(noisy / scale, weight=w),
            [0.02, 0.04, 0.06, 0.08, 0.12, 0.16],
            clean,
            data_range,
            tuned,
        ),
        best_of(
            "NLM (scikit-image)",
            lambda h: denoise_nl_means(
                noisy, h=h * sigma, sigma=sigma, patch_size=3, patch_distance=4, fast_mode=True
            ),
            [0.6, 0.8, 1.0, 1.2],
            clean,
            data_range,
            f"true; h {tuned}",
        ),
        _timed(
            "NLM (scikit-image)",
            "own estimate",
            lambda: denoise_nl_means(
                noisy, h=0.8 * own, sigma=own, patch_size=3, patch_distance=4, fast_mode=True
            ),
        ),
    ]
    results += nonlocal_peers(noisy, sigma, modality, threads)
    results += _bm4d(noisy, sigma, own, rician)
    return results


def nonlocal_peers(noisy, sigma, modality: str, threads: int, *, dip: bool = True) -> list:
    """For MR, dipy's non-local means (given the true noise level and its own estimate)
    and ANTs' denoise_image; with `dip`, auto-denoise's DIP (the subprocess peers where
    their venvs are set up; auto-denoise's 300 epochs are for crops). dipy's blockwise
    means preselect blocks by ratios of local means, which negative HU break (a CT crop:
    20.85 dB against the noisy input's 42.44), and ANTs' noise model is magnitude MR's."""
    out = _dipy(noisy, sigma, threads) if modality == "MR" else []
    return out + _subprocess_peers(noisy, modality, threads, dip=dip)


def _dipy(noisy, sigma, threads: int) -> list:
    """dipy's blockwise non-local means with its Rician correction (magnitude MR)."""
    from dipy.denoise.nlmeans import nlmeans
    from dipy.denoise.noise_estimate import estimate_sigma

    def run(s):
        return nlmeans(
            noisy.astype(np.float32),
            s,
            patch_radius=1,
            block_radius=2,
            rician=True,
            num_threads=threads,
            method="blockwise",
        )

    own = float(estimate_sigma(noisy, N=1)[0])
    return [
        _timed("dipy nlmeans", "true", lambda: run(sigma)),
        _timed("dipy nlmeans", "own estimate", lambda: run(own)),
    ]


def _bm4d(noisy, sigma, own, rician: bool) -> list:
    try:
        import bm4d
    except ImportError:
        print("bm4d not installed: pip install bm4d (skipping the BM4D baselines)")
        return []

    def plain(s):
        return bm4d.bm4d(noisy, s).astype(np.float32)

    def with_vst(s):
        vst = RicianVST(s)
        return vst.inverse(bm4d.bm4d(vst.forward(noisy), 1.0))

    out = [_timed("BM4D", "true", lambda: plain(sigma))]
    if rician:
        out.append(_timed("BM4D + VST", "true", lambda: with_vst(sigma)))
        out.append(_timed("BM4D + VST", "own estimate", lambda: with_vst(own)))
    else:
        out.append(_timed("BM4D", "own estimate", lambda: plain(own)))
    return out


def _subprocess_peers(noisy, modality: str, threads: int, *, dip: bool = True) -> list:
    out, missing = [], []
    ants = VENVS / "ants" / "bin" / "python"
    autoden = VENVS / "autodenoise" / "bin" / "python"
    if modality == "MR":  # ANTs' Rician model is for magnitude MR
        if ants.exists():
            args = [str(threads)]
            out.append(_peer("ANTs denoise_image", ants, "ants_denoise.py", noisy, args))
        else:
            missing.append("ANTs")
    if dip and autoden.exists():
        args = [str(threads), str(AUTODEN_EPOCHS)]
        entry = _peer("auto-denoise DIP", autoden, "autoden_dip.py", noisy, args)
        entry["parameter"] = f"{AUTODEN_EPOCHS} epochs"
        out.append(entry)
    elif dip:
        missing.append("auto-denoise")
    if missing:  # only the peers this call would have run
        print(f"peer venvs missing: bash benchmarks/setup_peers.sh (skipping {', '.join(missing)})")
    return out


def _peer(name: str, python: Path, script: str, noisy, args) -> dict:
    """Run a peer's script in its venv on a NIfTI copy of `noisy`; its own timing."""
    with tempfile.TemporaryDirectory() as folder:
        src, dst = Path(folder) / "in.nii.gz", Path(folder) / "out.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(noisy, np.float32), np.eye(4)), src)
        done = subprocess.run(
            [str(python), str(HERE / "peers" / script), str(src), str(dst), *args],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = float(re.search(r"seconds ([0-9.]+)", done.stdout).group(1))
        estimate = np.asarray(nib.load(dst).dataobj, np.float32)
    return _entry(name, estimate, seconds, "none (estimated inside)")


def interpolators(thick: np.ndarray, factors, clean, data_range) -> list:
    """Linear and cubic interpolation on a grid whose voxels tile the same extent."""

    def resample(order: int) -> np.ndarray:
        return zoom(thick, factors, order=order, grid_mode=True, mode="nearest")

    return [
        _timed(name, "", lambda o=order: resample(o))
        for name, order in (("linear", 1), ("cubic", 3))
    ]
