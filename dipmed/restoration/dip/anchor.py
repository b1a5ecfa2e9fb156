"""The anchor: a fixed, cheap estimate of the volume that the deep prior corrects.

x = anchor + f_theta(z), with f_theta's last layer starting near zero, so the fit starts
from the anchor instead of from nothing and spends its iterations on structure. The
anchor is the classical baseline of each task: TV denoising at the discrepancy weight
(or a Gaussian), trilinear interpolation (super-resolution), a normalised-convolution
fill (inpainting).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from dipmed.restoration.operators import apply

_FILL_SIGMA_VOX = 2.0  # inpainting: reach of the Gaussian that spreads known voxels
_SIGMA_CANDIDATES_VOX = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0)
_BACKPROJECT_LEVEL = 1.5  # sr anchor: back-projection stops at this x sigma^2 misfit
_BACKPROJECT_STEPS = 30


def make_anchor(
    measured: np.ndarray,
    kind: str,
    *,
    out_shape: tuple[int, int, int],
    sigma_vox: float,
    noise_sigma: float,
    mask: np.ndarray | None = None,
    style: str = "tv",
    operator=None,
    backproject: bool = False,
) -> np.ndarray:
    """The anchor on the output grid, in the measurement's (normalised) units.

    Denoising: `style` "tv" is Chambolle TV whose residual equals the noise variance
    (edge-preserving); "gaussian" a Gaussian of `sigma_vox` voxels (0: `smoothing_for`).
    Super-resolution: `sr_anchor` with the task's `operator`.
    """
    if kind == "denoise" and style == "tv":
        return tv_for(measured, noise_sigma)
    if sigma_vox <= 0 and kind in ("denoise", "inpaint"):
        sigma_vox = smoothing_for(measured, noise_sigma)
    if kind == "denoise":
        return _smooth(measured, sigma_vox)
    if kind == "sr":
        return sr_anchor(measured, out_shape, noise_sigma, operator, backproject=backproject)
    if kind == "inpaint" and mask is not None:
        return _smooth(fill_masked(measured, mask), sigma_vox)
    raise ValueError(f"no anchor for task {kind!r}")


def smoothing_for(measured: np.ndarray, noise_sigma: float) -> float:
    """The narrowest Gaussian (voxels) that removes more than the noise.

    mean((y - G_s * y)^2) grows with s. The anchor must sit just above the noise level,
    so that the fit starts under-fitted and descends through it: the discrepancy stop
    (misfit <= tau * sigma^2, tau < 1) then fires on the way down, not at the start.
    A narrow anchor also keeps fine detail (CT) that wide smoothing would erase.
    """
    return _narrowest(
        _SIGMA_CANDIDATES_VOX,
        lambda s: float(np.mean((measured - _smooth(measured, s)) ** 2)),
        noise_sigma,
    )


def sr_anchor(
    measured: np.ndarray, out_shape, noise_sigma: float, operator, *, backproject: bool = False
) -> np.ndarray:
    """Trilinear upsampling, moved to just above the noise level so that the fit descends.

    The discrepancy rule fires where the misfit mean((A(x) - y)^2) crosses sigma^2 on the
    way down; an anchor already below that level would stop the rule at once and return
    the anchor, one far above it costs the fit most of its iterations.

    - With `backproject` (slices denoised first, `restore`), above `_BACKPROJECT_LEVEL` x
      sigma^2 (edges across thick slices: trilinear missed the CT sample by 4.5 sigma):
      back-projection x <- x + up(y - A(x)) (Irani and Peleg 1991), the last step
      shortened to land on that level. It copies noise into x: on raw noisy slices it
      left the CT sample's residual flagged, hence only after denoising.
    - Below sigma^2 (noisy thick slices: A(trilinear(y)) is a smoothed y): the narrowest
      Gaussian (output voxels) whose misfit exceeds sigma^2, so that the stop rule has a
      descent to watch. Noise-free data keep plain trilinear.
    """
    up = upsample_linear(measured, out_shape)
    if operator is None:
        return up

    def misfit(x):
        return float(np.mean((apply(operator, x) - measured) ** 2))

    level = _BACKPROJECT_LEVEL * noise_sigma**2
    if backproject and noise_sigma > 0 and misfit(up) > level:
        return project_onto(up, measured, operator, level)
    sigma_vox = _narrowest(
        (0.0, *_SIGMA_CANDIDATES_VOX), lambda s: misfit(_smooth(up, s)), noise_sigma
    )
    return _smooth(up, sigma_vox)


def project_onto(x: np.ndarray, measured, operator, level: float) -> np.ndarray:
    """x <- x + t up(y - A(x)) until the misfit reaches `level` (t = 1; the last step
    shortened: the misfit is quadratic in t)."""
    for _ in range(_BACKPROJECT_STEPS):
        residual = (measured - apply(operator, x)).astype(np.float32)
        step = upsample_linear(residual, x.shape)
        seen = apply(operator, step)
        a, b, c = (float(np.mean(v)) for v in (seen**2, residual * seen, residual**2))
        if c <= level or a <= 0:
            break
        # mean((r - t q)^2) = level: the smaller root, when it lies within a full step
        disc = b * b - a * (c - level)
        t = (b - np.sqrt(disc)) / a if disc >= 0 else 2.0
        if 0.0 <= t <= 1.0:
            return (x + t * step).astype(np.float32)
        x = x + step
    return x.astype(np.float32)


def _narrowest(candidates, misfit, noise_sigma: float) -> float:
    """The first candidate width whose `misfit(width)` exceeds sigma^2 (else the widest)."""
    return next((s for s in candidates if misfit(s) > noise_sigma**2), candidates[-1])


def tv_for(measured: np.ndarray, noise_sigma: float, *, ratio: float = 1.0) -> np.ndarray:
    """Chambolle TV denoising whose residual is `ratio` x the noise variance (bisection)."""
    from skimage.restoration import denoise_tv_chambolle

    low, high = -5.0, 0.5  # log10 of the TV weight (normalised units)
    result = measured
    for _ in range(12):
        middle = (low + high) / 2
        result = denoise_tv_chambolle(measured, weight=10**middle)
        residual = float(np.mean((measured - result) ** 2))
        low, high = (middle, high) if residual < ratio * noise_sigma**2 else (low, middle)
    return denoise_tv_chambolle(measured, weight=10**high).astype(np.float32)


def upsample_linear(array: np.ndarray, out_shape: tuple[int, int, int]) -> np.ndarray:
    """Trilinear interpolation onto a grid whose voxels tile the same extent."""
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    up = F.interpolate(x, size=out_shape, mode="trilinear", align_corners=False)
    return up[0, 0].numpy()


def fill_masked(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unknown voxels (mask 0) from a Gaussian-weighted mean of nearby known ones."""
    known = (mask > 0).astype(np.float64)
    weights = gaussian_filter(known, _FILL_SIGMA_VOX)
    values = gaussian_filter(array * known, _FILL_SIGMA_VOX)
    fallback = float(array[known > 0].mean()) if known.any() else 0.0
    filled = np.where(weights > 1e-3, values / np.maximum(weights, 1e-12), fallback)
    return np.where(known > 0, array, filled).astype(np.float32)


def _smooth(array: np.ndarray, sigma_vox: float) -> np.ndarray:
    if sigma_vox <= 0:
        return np.asarray(array, dtype=np.float32)
    return gaussian_filter(np.asarray(array, dtype=np.float32), sigma_vox, mode="nearest")
