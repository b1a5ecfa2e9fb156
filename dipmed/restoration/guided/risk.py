"""The risk estimate of guided denoising: Monte-Carlo SURE with one shared probe.

Per voxel, b ~ N(0, I) the probe, S the noise correlation (I for white noise), v the
variance of the stabilised noise (1 when the noise level is exact):
    (u - x)^2 - v + 2 v (S b)(x(u + eps b) - x(u)) / eps
Their mean estimates the mean squared error in stabilised units (the input scores v); a
local average of them, the local error (the uncertainty map).

SURE leans on v: 2 % too much in v puts the estimate about 0.02 under the true error on
the benchmark crops. Where the level came from the wavelet estimate, which reads anatomy
in its detail band as noise (its std 1-3 % high on the benchmark crops, 11 % on a CT
whose own noise is correlated), v is read again on the guide's residual (`residual_variance`).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from dipmed.restoration.guided import collaborative
from dipmed.restoration.guided.member import HELD_OUT, correlate
from dipmed.restoration.noise.estimate import haar_detail, mad_sigma
from dipmed.restoration.noise.model import NoiseModel

EPSILON = 0.2  # finite-difference step (noise stds) through the guide and the final stage
_MIN_BLOCKS = 512  # 2x2x2 blocks needed to read the noise variance on the guide's residual
DARK_SIGMAS = 2.0  # MR: voxels whose guide is below this many noise sigmas are air to SURE
_MIN_BRIGHT = 0.05  # ... unless fewer than this fraction of the voxels would be left
# the probe's stream: a spawned child of seed 0, which no `default_rng(int)` reproduces
_PROBE_STREAM = np.random.SeedSequence(0, spawn_key=(0x5A7E,))
# the guide's echo's probe (`guide.echo`): another child, independent of the risk's
ECHO_STREAM = np.random.SeedSequence(0, spawn_key=(0xEC40,))


def probe(shape, stream: np.random.SeedSequence = _PROBE_STREAM) -> np.ndarray:
    """The risk estimate's probe b ~ N(0, I): the same for every stage (a fixed stream;
    `ECHO_STREAM` gives the guide's echo's, independent of it).

    The stream is one no `default_rng(int)` gives (`_PROBE_STREAM`): with seed 0, data
    whose noise was drawn from `default_rng(0)` (phantoms, benchmarks) had the noise as
    the probe, and the default member's first recorruption (seed 0) was the probe too;
    the finite difference then runs along the noise itself (the guide's divergence read
    0.41 against a true 0.11 on a crop of the whole MNI: benchmarks/README.md, issue 22,
    fourteenth session). Drawn in slabs along the first axis (the same numbers as one
    draw of the whole shape, without its float64 copy of the volume)."""
    rng, out = np.random.default_rng(stream), np.empty(shape, dtype=np.float32)
    rows = max(1, 2**20 // max(1, int(np.prod(shape[1:]))))
    for first in range(0, shape[0], rows):
        out[first : first + rows] = rng.standard_normal(out[first : first + rows].shape)
    return out


def shifted(u: np.ndarray, eps: float) -> np.ndarray:
    """u + eps b, b the probe (one new array)."""
    b = probe(u.shape)
    b *= eps
    b += u
    return b


def sure_terms(u, x, difference, eps: float, model: NoiseModel) -> np.ndarray:
    """Per-voxel SURE terms (u - x)^2 - v + 2 v (S b)(h(u + eps b) - h(u)) / eps, b the
    probe, v the model's `stabilised_variance`.

    Their mean estimates the mean squared error (stabilised units; the input scores v);
    a local average of them, the local error (the uncertainty map). In place: two
    whole-volume arrays besides the inputs.
    """
    v = model.stabilised_variance
    sb = correlate(torch.from_numpy(probe(u.shape)), model).numpy()
    sb *= difference
    sb *= 2.0 * v / eps
    terms = np.subtract(u, x, dtype=np.float32)
    np.square(terms, out=terms)
    terms -= v
    terms += sb
    return terms


def counted_voxels(guide: np.ndarray, stabiliser, model: NoiseModel) -> np.ndarray | None:
    """The voxels whose SURE terms a risk averages (None: every voxel): the candidates'
    choice, the guide's variant, the members' loss and risk.

    MR with white noise: not the dark ones, the guide below `DARK_SIGMAS` noise sigmas
    (image units). There the stabilised noise is far from Gaussian (the VST of
    near-Rayleigh data is bounded below and skewed), SURE is biased, and the background
    test sets the air to 0 anyway. On a whole head they are most of the volume (78 % of
    the MNI's), and over every voxel the candidates were ranked by the air: `fast` kept the
    guide, 0.30 dB under its final stage in the brain (benchmarks/README.md, issue 22,
    fourteenth session). Every voxel counts when fewer than `_MIN_BRIGHT` of them would,
    and for correlated noise, where leaving the air out made SURE members memorise faster.
    """
    if not (stabiliser.rician and model.white):
        return None
    counted = guide >= stabiliser.level(DARK_SIGMAS * stabiliser.sigma)
    return counted if counted.mean() >= _MIN_BRIGHT else None


def mean_risk(terms: np.ndarray, counted: np.ndarray | None) -> float:
    """The mean of SURE `terms` over the `counted` voxels (every voxel where None)."""
    if counted is None:
        return float(terms.mean(dtype=np.float64))
    return float(np.mean(terms, where=counted, dtype=np.float64))


def residual_variance(u, guide, change, eps: float, foreground: bool) -> float:
    """The variance of u's noise read on the guide's residual (stabilised units; 1.0 when
    too few blocks): (sd(d(u - g)) / k)^2, with d the finest diagonal Haar detail and sd
    its median-absolute estimate, averaged over the 8 placements of the 2x2x2 blocks (one
    placement alone read up to 7 % off). The guide takes the anatomy out of the detail
    band and a share of the noise with it; k is what it leaves of white noise, measured on
    the probe: sd(d(b - J b)) / sd(d(b)), J b = (g(u + eps b) - g(u)) / eps. `foreground`
    (MR): the blocks above the mean of u only, as the wavelet estimate reads them.

    On the benchmark crops and 8 others (MNI Rician 3-9 %, head CT 20 HU) it read the
    noise's variance 2 % under to 2.3 % over, where the wavelet estimate read 4 % under to
    24 % over. Its limit: voxel-sharp edges of high contrast, which the guide leaves in its
    residual (an unblurred phantom: 1.1-1.5x at 4 % noise; benchmarks/README.md, issue 22,
    tenth session)."""
    b = probe(u.shape)
    residual, white, left = [], [], []
    for corner in itertools.product((0, 1), repeat=3):
        at = tuple(slice(c, None) for c in corner)
        detail, mean = haar_detail(u[at], np.float32)
        inside = mean > float(mean.mean()) if foreground else np.ones(mean.shape, bool)
        if int(inside.sum()) < _MIN_BLOCKS:
            return 1.0
        detail -= haar_detail(guide[at], np.float32)[0]
        residual.append(mad_sigma(detail[inside]))
        detail = haar_detail(b[at], np.float32)[0]
        white.append(mad_sigma(detail[inside]))
        detail -= haar_detail(change[at], np.float32)[0] / eps
        left.append(mad_sigma(detail[inside]))
    share = float(np.mean(left) / np.mean(white))
    level = float(np.mean(residual)) / share if share > 0 else 0.0
    return level**2 if level > 0 else 1.0


def prior_risk(u, prior, change, divergence, roles, model) -> float:
    """The members' mean's SURE on the held-out voxels, which no SURE member trained on
    (the trained half's misses what the weights memorised of the noise there:
    benchmarks/README.md, issue 22). A recorrupted member trains on pairs made of every
    voxel of u: there the estimate misses what its weights learned of u's noise (0.03-0.06
    under the true error on the benchmark crops; the guide's, with no weights, 0.00-0.04
    under: the noise estimate's 1-4 % excess).

    Its divergence: `change` along the probe (the guide's, and in patches the averaged
    weights'), plus, fitted whole, `divergence`: the members' per-voxel terms averaged
    over their steps, as their output is."""
    terms = sure_terms(u, prior, change, EPSILON, model)
    if divergence is not None:
        terms += 2.0 * divergence
    return float(terms[roles == HELD_OUT].mean(dtype=np.float64))


def final_sure_terms(
    u, finals, variances, model, moved_pilot, settings, report=None, device=None, where=None,
    echo=None,
):  # fmt: skip
    """SURE terms of the pair `finals` = W(u; pilot) (`collaborative.bayes`, variant "pair": the
    final stage and its smoother variant), the pilot moved as u moves: p(u + eps b) ~ p + dp.

    Each member is g + f_theta(u): dp is the guide's change plus the members' change at
    their final weights; how the trained weights themselves change with u is left out
    (it would need refitting). One pass of the pair on the shifted data, under the
    stage's `settings` and over the voxels `where` reaches, as the stage's (elsewhere the
    stage is its pilot, and so is its change), with the stage's `echo` (fixed: how the
    guide's echo changes with u is of second order); a list of two term arrays.
    """
    eps = EPSILON
    moved = collaborative.bayes(
        shifted(u, eps), moved_pilot, variances, settings=settings, report=report,
        device=device, variant="pair", where=where, echo=echo,
    )  # fmt: skip
    terms = []
    for x, m in zip(finals, moved, strict=True):
        m -= x
        terms.append(sure_terms(u, x, m, eps, model))
    return terms
