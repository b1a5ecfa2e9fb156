"""The risk estimate of guided denoising: Monte-Carlo SURE with one shared probe.

Per voxel, b ~ N(0, I) the probe, S the noise correlation (I for white noise):
    (u - x)^2 - 1 + 2 (S b)(x(u + eps b) - x(u)) / eps
Their mean estimates the mean squared error in stabilised units (the input scores 1); a
local average of them, the local error (the uncertainty map).
"""

from __future__ import annotations

import numpy as np
import torch

from dipmed.restoration.guided import collaborative
from dipmed.restoration.guided.member import HELD_OUT, correlate
from dipmed.restoration.noise.model import NoiseModel

EPSILON = 0.2  # finite-difference step (noise stds) through the guide and the final stage


def probe(shape) -> np.ndarray:
    """The risk estimate's probe b ~ N(0, I): the same for every stage (a fixed seed).

    Drawn in slabs along the first axis (the same numbers as one draw of the whole
    shape, without its float64 copy of the volume)."""
    rng, out = np.random.default_rng(0), np.empty(shape, dtype=np.float32)
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
    """Per-voxel SURE terms (u - x)^2 - 1 + 2 (S b)(h(u + eps b) - h(u)) / eps, b the probe.

    Their mean estimates the mean squared error (stabilised units; the input scores 1);
    a local average of them, the local error (the uncertainty map). In place: two
    whole-volume arrays besides the inputs.
    """
    sb = correlate(torch.from_numpy(probe(u.shape)), model).numpy()
    sb *= difference
    sb *= 2.0 / eps
    terms = np.subtract(u, x, dtype=np.float32)
    np.square(terms, out=terms)
    terms -= 1.0
    terms += sb
    return terms


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


def final_sure_terms(u, x, variances, model, moved_pilot, report=None, device=None) -> np.ndarray:
    """SURE terms of x = W(u; pilot), the pilot moved as u moves: p(u + eps b) ~ p + dp.

    Each member is g + f_theta(u): dp is the guide's change plus the members' change at
    their final weights; how the trained weights themselves change with u is left out
    (it would need refitting).
    """
    eps = EPSILON
    moved = collaborative.bayes(
        shifted(u, eps), moved_pilot, variances, report=report, device=device
    )
    moved -= x
    return sure_terms(u, x, moved, eps, model)
