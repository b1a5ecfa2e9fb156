"""Classical restorations at their best settings (tuned with the reference: an oracle,
favourable to the baselines), for comparison with dipmed."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from dipmed.metrics import psnr


def best_of(name: str, run: Callable[[float], np.ndarray], grid, clean, data_range) -> dict:
    """Run `run(p)` for each p in `grid`; keep the best PSNR (and the time of that run)."""
    best = None
    for parameter in grid:
        start = time.perf_counter()
        estimate = run(parameter)
        seconds = time.perf_counter() - start
        score = psnr(estimate, clean, data_range)
        if best is None or score > best["psnr"]:
            best = {
                "method": name,
                "parameter": parameter,
                "psnr": score,
                "seconds": seconds,
                "estimate": estimate,
            }
    return best


def denoisers(noisy: np.ndarray, sigma: float, clean: np.ndarray, data_range: float) -> list:
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    scale = float(noisy.max())
    results = [
        best_of(
            "Gaussian",
            lambda s: gaussian_filter(noisy, s),
            [0.5, 0.75, 1.0, 1.25, 1.5],
            clean,
            data_range,
        ),
        best_of(
            "TV (Chambolle)",
            lambda w: scale * denoise_tv_chambolle(noisy / scale, weight=w),
            [0.02, 0.04, 0.06, 0.08, 0.12, 0.16],
            clean,
            data_range,
        ),
        best_of(
            "NLM",
            lambda h: denoise_nl_means(
                noisy, h=h * sigma, sigma=sigma, patch_size=3, patch_distance=4, fast_mode=True
            ),
            [0.6, 0.8, 1.0, 1.2],
            clean,
            data_range,
        ),
    ]
    try:
        import bm4d

        results.append(
            best_of(
                "BM4D",
                lambda m: bm4d.bm4d(noisy, m * sigma).astype(np.float32),
                [1.0],
                clean,
                data_range,
            )
        )
    except ImportError:
        print("bm4d not installed: pip install bm4d (skipping the BM4D baseline)")
    return results


def interpolators(thick: np.ndarray, factors, clean, data_range) -> list:
    """Linear and cubic interpolation on a grid whose voxels tile the same extent."""

    def resample(order: int) -> np.ndarray:
        return zoom(thick, factors, order=order, grid_mode=True, mode="nearest")

    results = []
    for name, order in (("linear", 1), ("cubic", 3)):
        start = time.perf_counter()
        estimate = resample(order)
        results.append(
            {
                "method": name,
                "parameter": None,
                "psnr": psnr(estimate, clean, data_range),
                "seconds": time.perf_counter() - start,
                "estimate": estimate,
            }
        )
    return results
