"""The Gaussian model of a group of similar cubes (NL-Bayes; Lebrun, Buades, Morel 2013),
the Bayes stage of `collaborative`, and its smoother variant.

A group's K cubes (rows) are a Gaussian with the covariance C of the pilot's cubes and the
mean m of the noisy ones; each cube's estimate is m + (y - m) A^-1 C, A = C + S, S the noise
covariance of a cube. The smoother variant takes l C for C: its gain is l (I - (1 - l) G)^-1
G with G = A^-1 C, summed as a series in G (`series`): matrix products, no second inverse.
"""

from __future__ import annotations

import math

import torch

SERIES_TOLERANCE = 0.002  # the variant's gain: series terms until the remainder is below


def series(scale: float) -> tuple[float, int]:
    """(l, terms): the smoother variant's covariance scale and the terms of its gain's
    series, l sum_j<terms (1 - l)^j G^(j+1), whose remainder at G's largest eigenvalue (< 1)
    is below (1 - l)^terms <= `SERIES_TOLERANCE`."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"smooth_scale must lie in (0, 1], not {scale}")
    if scale == 1.0:
        return 1.0, 1
    return scale, max(1, math.ceil(math.log(SERIES_TOLERANCE) / math.log(1.0 - scale)))


def estimate(groups, pilots, noise, white: float | None = None, *, smooth=None):
    """Groups -> estimates under a Gaussian model of the group: x = m + (y - m) A^-1 C
    (rows), C the pilot cubes' covariance, A = C + S, m the noisy cubes' mean; weighted by
    the inverse of the estimate's noise variance, trace(G S G^T) with G = C A^-1 (white
    noise, S = s I: s |G|^2, no product).

    `smooth` (l, terms): also the variant of covariance l C, m + (y - m) l sum_j ((1 - l)
    A^-1 C)^j A^-1 C over `terms` terms (`series`; `collaborative`'s docstring), its weights
    flat; returns (estimates, weights, variant's estimates)."""
    gain = gain_of(pilots - pilots.mean(dim=1, keepdim=True), noise, white)  # A^-1 C = G^T
    mean = groups.mean(dim=1, keepdim=True)
    if white is not None:
        spread = white * gain.square().sum(dim=(1, 2))
    else:
        spread = ((gain.transpose(1, 2) @ noise) * gain.transpose(1, 2)).sum(dim=(1, 2))
    weight = 1.0 / spread.clamp(min=float(noise.diagonal().min()) * 1e-3)
    shrunk = (groups - mean) @ gain
    if smooth is None:
        return shrunk.add_(mean), weight
    scale, terms = smooth
    total = shrunk  # Horner: z + (1 - l) (z + (1 - l) (...) G) G, z = (y - m) G
    for _ in range(terms - 1):
        total = torch.baddbmm(shrunk, total, gain, alpha=1.0 - scale)
    variant = total.mul_(scale).add_(mean) if terms > 1 else shrunk * scale + mean
    return shrunk.add_(mean), weight, variant


def gain_of(centred: torch.Tensor, noise: torch.Tensor, white: float | None = None) -> torch.Tensor:
    """A^-1 C, C the covariance of the centred cubes (B, K, n^3), A = C + S; by Cholesky
    (the inverse of A, then I - A^-1 S). Where C dwarfs S (hard edges of high contrast, a
    small noise level), float32 rounding can leave A indefinite: those groups are computed
    again in float64."""
    eye = 1e-5 * float(noise.diagonal().mean()) * torch.eye(len(noise), device=noise.device)
    c = centred.transpose(1, 2) @ centred / max(1, centred.shape[1] - 1)
    regularised = noise + eye
    factor, info = torch.linalg.cholesky_ex(c + regularised)
    bad = info != 0
    identity = torch.eye(len(noise), device=noise.device)
    factor[bad] = identity  # failed factors: redone below in float64
    # A^-1 C = I - A^-1 (S + eps I): an inverse and one product, 1.3x faster than a solve
    inverse = torch.cholesky_inverse(factor)
    if white is not None:  # S + eps I = (s + eps) I: a scale, no product
        gain = identity - inverse * float(regularised[0, 0])
    else:
        gain = identity - inverse @ regularised
    if bool(bad.any()):
        x = centred[bad].double()
        c = x.transpose(1, 2) @ x / max(1, x.shape[1] - 1)
        factor = torch.linalg.cholesky(c + (noise + eye).double())
        gain[bad] = torch.cholesky_solve(c, factor).float()
    return gain
