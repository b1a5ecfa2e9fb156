"""Collaborative filtering of grouped similar cubes: an open 3D non-local guide.

The route of BM4D (Maggioni, Katkovnik, Egiazarian, Foi, IEEE TIP 2013), written here
from the paper's description, for Gaussian noise of known (possibly coloured) spectrum:

1. Match: for reference cubes on a grid (every `step` voxels; the guide's Bayes stage
   every `step_guide_bayes`), the `group` most similar cubes (squared distance on a
   matching image) within a search window; distances at the reference corners only.
2. Transform each group: an orthonormal 3D DCT of every cube, then a DCT across the group.
3. Shrink: stage 1 hard-thresholds the coefficients at `threshold` noise stds; BM4D's
   stage 2 (`wiener`) applies the empirical Wiener weights |p|^2 / (|p|^2 + s^2) of a
   pilot estimate p (the output of stage 1), with s^2 the noise variance of that
   coefficient. dipmed's stage 2 is `bayes` (below).
4. Invert and aggregate: each estimated cube goes back to its place, weighted by the
   inverse of its group's estimated variance and by a Kaiser window (beta 2, as BM4D:
   the cube's centre counts more than its edges); overlapping cubes are averaged
   (`aggregation`).

`bayes`, the second stage of `denoise`, after NL-Bayes (Lebrun, Buades, Morel, SIAM J.
Imaging Sci. 2013): each group of `group_bayes` cubes is a Gaussian whose covariance C is
that of the pilot's cubes (their own basis instead of the fixed DCT) and whose mean m is
that of the noisy cubes; each cube's estimate is m + C (C + S)^-1 (y - m), S the noise
covariance of a cube. It is linear in the noisy volume for a fixed pilot, but for its
homogeneous-area blend: a group whose noisy values spread about their one mean by no more
than the noise is moved towards that mean (`homogeneous`, `gaussian`).

The smoother variant of a Bayes stage (`bayes`'s and `denoise`'s `variant`), from the same
matching: the pilot's covariance x l (`smooth_scale`, the guide's `smooth_scale_guide`: a
pilot that carries noise over-states the signal's variance), flat weights (`gaussian`).
Smooth anatomy seen through a PSF rewards it, voxel-sharp edges do not: SURE chooses.

Coloured noise enters as the variance of each 3D-DCT coefficient of a cube (`NoiseModel`),
so a spatially correlated noise is shrunk where its power is, not everywhere alike.
A piloted stage can skip the reference cubes that cannot reach the voxels it is asked for.

Arrays in, arrays out; torch on the CPU (or the device of the input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from dipmed.restoration.guided import aggregation, gaussian, matching, shrinkage
from dipmed.restoration.guided.transform import cube_noise, cube_transform, dct_matrix, variances_of

BATCH_BYTES = 256 * 2**20  # bytes of one grouped tensor batch (transform and aggregate)
_BATCH_COPIES = 10  # grouped tensors alive at once in a batch (values, coefficients, ...)
_SMOOTH_COPIES = 4  # ... more for a smoother variant (its series and weighted cubes)
_ECHO_COPIES = 3  # ... more with an echo (its cubes, their centred copy, the coefficients)
_MODELS = {"plain": "bayes", "smooth": "smooth", "pair": "pair"}  # variant -> `_stage` model


@dataclass(frozen=True)
class CollaborativeSettings:
    cube: int = 4  # cube side (voxels)
    step: int = 2  # distance between reference cubes (voxels)
    step_guide_bayes: int = 3  # ... in `denoise`'s Bayes stage (the guide's): faster, the
    # final stage keeps `step`
    search: int = 5  # search radius (voxels): a window of (2 * search + 1)^3 offsets
    group: int = 16  # cubes per group, stage 1 (hard thresholding, as BM4D)
    group_wiener: int = 32  # cubes per group, stage 2 (Wiener)
    group_bayes: int = 64  # cubes per group, the Bayes stage
    threshold: float = 2.7  # stage 1 hard threshold, in noise stds of each coefficient
    window: float = 2.0  # Kaiser beta of the aggregation window (BM4D's; 0 is flat)
    smooth_scale: float = 0.6  # the final stage's smoother variant: the pilot's covariance
    # times this (`bayes`'s `variant`)
    smooth_scale_guide: float = 0.5  # ... the guide's Bayes stage's (`denoise`, its pilot
    # the noisier hard-thresholded volume)
    smooth_scale_echo: float = 0.8  # ... a Bayes stage's with its pilot's echo out (`bayes`'s
    # `echo`): the covariance no longer over-states the signal's, less to scale away
    homogeneous: tuple[float, float] | None = (0.9, 1.0)  # a Bayes stage's homogeneous-area
    # test: a group whose noisy values spread by under the first many noise stds about
    # their mean is that mean, over the second the Bayes estimate, a blend between
    # (`gaussian`); None: off

    def variant_scale(self, echo: bool) -> float:
        """The smoother variant's covariance scale of a piloted Bayes stage, with or
        without its pilot's echo out."""
        return self.smooth_scale_echo if echo else self.smooth_scale


# The final stage (piloted by the members, or in `fast` by the guide) and the recorrupted
# member's training through it: one setting, so the member learns the stage it pilots
FINAL = CollaborativeSettings()


def denoise(
    noisy: np.ndarray,
    variances: torch.Tensor | float,
    *,
    settings: CollaborativeSettings = CollaborativeSettings(),
    pilot: np.ndarray | None = None,
    report: Callable[[int, int], None] | None = None,
    device: torch.device | str | None = None,
    variant: str = "plain",
):
    """Two-stage collaborative filtering of `noisy` (3D) with noise of the given spectrum:
    hard thresholding, then the Bayes stage piloted by its output (in place of BM4D's
    Wiener weights, which it beat as the guide's stage 2 and as the final stage:
    benchmarks/README.md, issue 10). `variant`: "plain" (that stage), "smooth" (its
    smoother variant, the module docstring, at `smooth_scale_guide`) or "pair" (both,
    from one matching: a tuple).

    `variances`: a float (white noise of that variance) or the per-coefficient variances
    of a cube's 3D DCT (`coefficient_variances`). With `pilot`, stage 1 is skipped and the
    pilot drives matching and the groups' covariances.

    Example:
        >>> x = np.zeros((20, 20, 20), np.float32); x[5:15] = 1
        >>> y = x + np.random.default_rng(0).normal(0, 0.2, x.shape).astype(np.float32)
        >>> float(np.mean((denoise(y, 0.04) - x) ** 2)) < 0.004
        True
    """
    halves = [None, None]
    if report is not None:  # slabs of both stages counted together
        halves = [lambda d, t: report(d, 2 * t), lambda d, t: report(t + d, 2 * t)]
    if pilot is None:
        pilot = hard_threshold(noisy, variances, settings=settings, report=halves[0], device=device)
    second = replace(
        settings, step=settings.step_guide_bayes, smooth_scale=settings.smooth_scale_guide
    )
    return bayes(noisy, pilot, variances, settings=second, report=halves[1], device=device,
                 variant=variant)  # fmt: skip


def hard_threshold(
    noisy: np.ndarray, variances, *, settings=CollaborativeSettings(), report=None, device=None
) -> np.ndarray:
    """Stage 1: groups matched on the noisy volume, coefficients hard-thresholded."""
    y = _tensor(noisy, device)
    var = variances_of(variances, settings.cube)
    return _stage(y, y, var, settings, pilot=None, report=report)[0].cpu().numpy()


def wiener(
    noisy: np.ndarray,
    pilot,
    variances,
    *,
    settings=CollaborativeSettings(),
    report=None,
    device=None,
):
    """Stage 2: groups matched on `pilot`, empirical Wiener weights from it (linear in noisy).

    `report(done, total)` after each slab of reference cubes (progress). `device`: where
    the filter runs (the volumes come back to the host)."""
    return _piloted(noisy, pilot, variances, settings, report, device, "wiener")


def bayes(
    noisy: np.ndarray,
    pilot,
    variances,
    *,
    settings=CollaborativeSettings(),
    report=None,
    device=None,
    variant: str = "plain",
    where: np.ndarray | None = None,
    echo: np.ndarray | None = None,
):
    """Stage 2 by a Gaussian model of each group (NL-Bayes): groups matched on `pilot`,
    their covariance from the pilot's cubes, their mean from `noisy` (linear in noisy but
    for the homogeneous-area blend, `settings.homogeneous`).
    `variant` as `denoise`'s, at `smooth_scale`: "pair" gives (the stage, its smoother
    variant) from one matching.

    `where` (boolean, the volume's shape): the voxels wanted. Reference cubes whose group
    cannot reach one of them (none within the search radius of the cube) are skipped, so
    the wanted voxels come out exactly as over the whole volume; a voxel no cube covers
    keeps the pilot's value (MR air: `pipeline`).

    `echo` (the volume's shape): the pilot's echo of a unit noise of the data's spectrum,
    J b; each group's covariance is the pilot cubes' less the echo cubes', clipped to its
    positive part (`gaussian`), the smoother variant at `smooth_scale_echo`.

    The pilot's own basis adapts to each group, where the Wiener weights keep the fixed
    DCT; the comparison is in benchmarks/README.md (issue 10).
    """
    model = _MODELS[variant]
    return _piloted(noisy, pilot, variances, settings, report, device, model, where, echo)


def _piloted(noisy, pilot, variances, settings, report, device, model: str, where=None,
             echo=None):  # fmt: skip
    """A piloted stage: its estimate (its estimate and the smoother variant's, a tuple,
    for `model` "pair"), over the voxels `where` reaches, less the `echo` (`bayes`)."""
    p = _tensor(pilot, device)
    var = variances_of(variances, settings.cube)
    y = _tensor(noisy, device)
    echo = None if echo is None else _tensor(echo, device)
    out = _stage(y, p, var, settings, pilot=p, report=report, model=model, where=where,
                 echo=echo)  # fmt: skip
    out = tuple(x.cpu().numpy() for x in out)
    return out if model == "pair" else out[0]


def _tensor(x: np.ndarray, device=None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device or "cpu")


def _stage(y, match_on, var, settings: CollaborativeSettings, *, pilot, report, model=None,
           where=None, echo=None):  # fmt: skip
    """One stage over the whole volume, in slabs of reference cubes (memory bounded): a
    tuple of its estimates (one; two for `model` "pair").

    Without a pilot: hard thresholding; with one, its Wiener weights (`model` "wiener") or
    its groups' Gaussian model ("bayes"; "smooth": its smoother variant; "pair": both);
    with `where` (a pilot's stage), only the reference cubes that reach it, and with
    `echo`, the pilot's covariance less the echo's (`bayes`)."""
    n, device = settings.cube, y.device
    reach = None if where is None else matching.reach(_tensor(where, device), n, settings.search)
    var = var.to(device)
    padded, pad, pilot, echo = _padded(y, match_on, pilot, echo, n)
    groups = {None: settings.group, "wiener": settings.group_wiener}
    k = groups.get(model, settings.group_bayes)
    t, dk = cube_transform(n).to(device), dct_matrix(k).to(device)
    if model in ("bayes", "pair", "smooth"):  # S, and s where S = s I
        noise, white = cube_noise(var, n, device), float(var[0]) if _flat(var) else None
    scale = settings.variant_scale(echo is not None)
    smooth = gaussian.series(scale) if model in ("pair", "smooth") else None
    axis = aggregation.axis_window(n, settings.window).to(device)
    offsets = matching.cube_offsets(padded.shape, n).to(device)
    values = padded.reshape(-1)
    sums = [aggregation.Sums(padded.shape, axis, device) for _ in range(1 + (model == "pair"))]
    copies = _BATCH_COPIES + (_SMOOTH_COPIES if smooth else 0)
    copies += _ECHO_COPIES if echo is not None else 0
    batch = max(1, BATCH_BYTES // (k * n**3 * 4 * copies))
    slabs = list(matching.reference_slabs(padded.shape, n, settings.step))
    for done, refs in enumerate(slabs):
        if report is not None:
            report(done, len(slabs))
        bases = matching.match_reaching(pad, refs, n, settings.search, k, reach)  # (R, K)
        for chunk in torch.split(bases, batch) if len(bases) else ():
            flat = chunk[:, :, None] + offsets  # (B, K, n^3) voxel indices
            if pilot is None:
                cubes, weight = shrinkage.hard_threshold(
                    values[flat], dk, t, var, settings.threshold
                )
            elif model != "wiener":
                cubes, weight, variant = _bayes_cubes(
                    values, pilot, flat, noise, white, smooth, _at(echo, flat), settings.homogeneous
                )
                if variant is not None:
                    sums[-1].add(chunk, flat, variant, None)  # flat weights
                    del variant
                if model == "smooth":
                    continue
            else:
                cubes, weight = shrinkage.wiener(values[flat], pilot[flat], dk, t, var)
            sums[0].add(chunk, flat, cubes, weight)
    if report is not None:
        report(len(slabs), len(slabs))
    shape, fallback = padded.shape, None if reach is None else pilot  # where no cube is
    del padded, pad, pilot, values, echo  # the volume's copies count at the peak: freed first
    out = (s.result(fallback).reshape(shape) for s in sums)
    return tuple(matching.unpad(x, y.shape).contiguous() for x in out)


def _bayes_cubes(values, pilot, flat, noise, white, smooth, echo, homogeneous):
    """A chunk's groups (voxel indices `flat`) by `gaussian.estimate`: (estimates, weights,
    the smoother variant's estimates or None)."""
    out = gaussian.estimate(values[flat], pilot[flat], noise, white, smooth=smooth, echo=echo,
                            homogeneous=homogeneous)  # fmt: skip
    return out if smooth is not None else (*out, None)


def _padded(y, match_on, pilot, echo, n: int):
    """One padded copy per distinct volume (stage 1 matches on y itself, stage 2 on its
    pilot): y's, the matching image's, and the pilot's and the echo's flat."""
    padded = matching.pad(y, n)
    pad = padded if match_on is y else matching.pad(match_on, n)
    if pilot is not None:
        pilot = (pad if pilot is match_on else matching.pad(pilot, n)).reshape(-1)
    if echo is not None:
        echo = matching.pad(echo, n).reshape(-1)
    return padded, pad, pilot, echo


def _flat(var: torch.Tensor) -> bool:
    """Whether every coefficient has the same noise variance (white noise)."""
    return bool((var == var[0]).all())


def _at(volume, flat):
    """The cubes of a flat padded `volume` at `flat` (None where there is no volume)."""
    return None if volume is None else volume[flat]
