"""The Gaussian model of a group of similar cubes (NL-Bayes; Lebrun, Buades, Morel 2013),
the Bayes stage of `collaborative`, and its smoother variant.

A group's K cubes (rows) are a Gaussian with the covariance C of the pilot's cubes and the
mean m of the noisy ones; each cube's estimate is m + (y - m) A^-1 C, A = C + S, S the noise
covariance of a cube. The smoother variant takes l C for C: its gain is l (I - (1 - l) G)^-1
G with G = A^-1 C, summed as a series in G (`series`): matrix products, no second inverse.
The series is cut after n products with its tail taken at G's eigenvalue 1 (a geometric
sum): l sum_j<n X^j G + X^n G, X = (1 - l) G, exact where an eigenvalue g of G is 0 or 1,
off by ((1 - l) g)^n (1 - l)(1 - g) / l between (relative): 4 products at l = 0.6 where
the plain cut needed 7 for the same bound.

The final stage's pilot echoes the noise it will filter (its guide is a function of u),
so the pilot's covariance over-states the signal's by the echo's: with `echo`, the cubes
of J b (the guide's response to a noise of the data's spectrum, `guide.echo`) beside the
pilot's, C is the pilot's covariance less the echo's, its negative eigenvalues set to 0
(the difference is indefinite; unclipped, the smoother variant blew up). The gains then
come from the eigenvectors of the whitened C, S^-1/2 C S^-1/2 = V w V^T:
A^-1 C = S^-1/2 V (w / (w + 1)) V^T S^1/2, and l C's exactly, l w / (l w + 1), no series
(`_clipped`; benchmarks/README.md, issue 22, twenty-first session).

A group whose noisy values spread about their one mean by no more than the noise is a flat
region seen through noise (NL-Bayes's homogeneous-area test, Lebrun, Buades, Morel 2013):
its covariance, read from 64 cubes, is mostly the sampling's. Its cubes are that mean,
blended back into the Bayes estimate as the spread grows from `homogeneous`'s first value
to its second (noise stds; a blend, not a cut, so the risk's finite difference sees a
continuous estimate: `_flattened`; benchmarks/README.md, issue 22, twenty-second session).
"""

from __future__ import annotations

import torch

SERIES_TOLERANCE = 0.002  # the variant's gain: products until its relative error is below
CONDITION_LIMIT = 1e4  # groups whose A may be worse conditioned than this: in float64


def series(scale: float) -> tuple[float, int]:
    """(l, n): the smoother variant's covariance scale and the products of its gain's
    series (the module docstring), the fewest whose relative error at its worst eigenvalue,
    (1 - l)^(n + 1) / l * n^n / (n + 1)^(n + 1), is below `SERIES_TOLERANCE`."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"smooth_scale must lie in (0, 1], not {scale}")
    products = 0
    while _series_error(scale, products) > SERIES_TOLERANCE:
        products += 1
    return scale, products


def _series_error(scale: float, n: int) -> float:
    """The largest relative error, over G's eigenvalues in [0, 1], of the series cut
    after n products with its tail at eigenvalue 1."""
    worst = n**n / (n + 1) ** (n + 1)  # max of g^n (1 - g), at g = n / (n + 1)
    return (1.0 - scale) ** (n + 1) / scale * worst


def estimate(groups, pilots, noise, white: float | None = None, *, smooth=None, echo=None,
             homogeneous: tuple[float, float] | None = None):  # fmt: skip
    """Groups -> estimates under a Gaussian model of the group: x = m + (y - m) A^-1 C
    (rows), C the pilot cubes' covariance, A = C + S, m the noisy cubes' mean; weighted by
    the inverse of the estimate's noise variance, trace(G S G^T) with G = C A^-1 (white
    noise, S = s I: s |G|^2, no product).

    `smooth` (l, n): also the variant of covariance l C, m + (y - m) (l sum_j<n X^j G +
    X^n G), G = A^-1 C, X = (1 - l) G, after n products (`series`; `collaborative`'s
    docstring), its weights flat; returns (estimates, weights, variant's estimates).

    `echo` (the echo's cubes, as `pilots`): C less the echo's covariance (the module
    docstring). `homogeneous` (low, high): flat groups towards their mean (`_flattened`)."""
    if echo is not None:
        out = _clipped(groups, pilots, echo, noise, white, smooth)
    else:
        out = _estimate(groups, pilots, noise, white, smooth)
    return _flattened(groups, noise, homogeneous, out)


def _estimate(groups, pilots, noise, white, smooth):
    """`estimate` by Cholesky, no echo."""
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
    scale, products = smooth
    total = shrunk / scale  # Horner from the tail z / l: z + (1 - l) (z + ... ) G, z = (y - m) G
    for _ in range(products):
        total = torch.baddbmm(shrunk, total, gain, alpha=1.0 - scale)
    variant = total.mul_(scale).add_(mean)
    return shrunk.add_(mean), weight, variant


def _flattened(groups, noise, homogeneous: tuple[float, float] | None, out: tuple) -> tuple:
    """`out` (estimates, weight[, variant]) with each group's cubes moved towards the group's
    one mean by a = (high^2 - r) / (high^2 - low^2) clipped to [0, 1], r the variance of its
    noisy values about that mean over the mean noise variance of a voxel: all the way at
    a spread under `low` noise stds, not at all above `high` (None: off). The weights stay."""
    if homogeneous is None:
        return out
    low, high = homogeneous
    # per cube, then per group: short rows, summed in the same order whatever the batch (a
    # reduction of a group's 4096 values at once was split over threads in small batches);
    # the spread as the mean square less the squared mean: no centred copy of the groups
    mean = groups.mean(dim=2, keepdim=True).mean(dim=1, keepdim=True)
    spread = groups.square().mean(dim=2).mean(dim=1).sub_(mean.square().flatten())
    spread /= float(noise.diagonal().mean())
    share = spread.neg_().add_(high**2).div_(high**2 - low**2).clamp_(0.0, 1.0)
    if not bool((share > 0).any()):
        return out
    share = share[:, None, None]
    for cubes in out[::2]:  # the estimates and the variant's, not the weights: in place,
        cubes.lerp_(mean.expand_as(cubes), share)  # exact at shares 0 and 1 (no gather)
    return out


def gain_of(centred: torch.Tensor, noise: torch.Tensor, white: float | None = None) -> torch.Tensor:
    """A^-1 C, C the covariance of the centred cubes (B, K, n^3), A = C + S; by Cholesky
    (the inverse of A, then I - A^-1 S). Where C dwarfs S (hard edges of high contrast, a
    small noise level; a wild pilot), float32 rounding leaves A^-1 inaccurate (its error
    about the condition of A times 6e-8: a pilot 3000 noise stds off gave G eigenvalues of
    -19, and the smoother variant's series made them 1e5 off) or A indefinite: groups whose
    condition bound, trace(C) / the least noise variance, exceeds `CONDITION_LIMIT`, or
    whose factor fails, are computed again in float64."""
    eye = 1e-5 * float(noise.diagonal().mean()) * torch.eye(len(noise), device=noise.device)
    c = centred.transpose(1, 2) @ centred / max(1, centred.shape[1] - 1)
    regularised = noise + eye
    factor, info = torch.linalg.cholesky_ex(c + regularised)
    least = float(torch.linalg.eigvalsh(regularised.double()).min())
    bad = (info != 0) | (c.diagonal(dim1=1, dim2=2).sum(dim=1) > CONDITION_LIMIT * least)
    identity = torch.eye(len(noise), device=noise.device)
    factor[bad] = identity  # redone below in float64
    # A^-1 C = I - A^-1 (S + eps I): an inverse and one product, 1.3x faster than a solve;
    # A^-1 = L^-T L^-1 by a triangular solve and a product, 2.7x faster than
    # `cholesky_inverse` on this CPU (batches of 64 x 64)
    lower = torch.linalg.solve_triangular(factor, identity.expand_as(factor), upper=False)
    inverse = lower.transpose(1, 2) @ lower
    if white is not None:  # S + eps I = (s + eps) I: a scale, no product
        gain = identity - inverse * float(regularised[0, 0])
    else:
        gain = identity - inverse @ regularised
    if bool(bad.any()):
        x = centred[bad].double()
        c = x.transpose(1, 2) @ x / max(1, x.shape[1] - 1)
        factor = torch.linalg.cholesky(c + regularised.double())
        gain[bad] = torch.cholesky_solve(c, factor).float()
    return gain


def _clipped(groups, pilots, echo, noise, white, smooth):
    """`estimate` with C = cov(pilots) - cov(echo), clipped to its positive part, by the
    eigenvectors of the whitened C (the module docstring)."""
    rows = max(1, pilots.shape[1] - 1)
    centred = pilots - pilots.mean(dim=1, keepdim=True)
    c = centred.transpose(1, 2) @ centred
    centred = echo - echo.mean(dim=1, keepdim=True)
    c = c.baddbmm_(centred.transpose(1, 2), centred, alpha=-1.0).div_(rows)
    del centred
    into, back = _whitening(noise, white)  # S^-1/2, S^1/2 (white: scalars)
    c = c / white if white is not None else into @ c @ into
    w, v = _eigh(c)
    w = w.clamp_(min=0.0)
    mean = groups.mean(dim=1, keepdim=True)
    coefficients = (groups - mean) @ (v if white is not None else into @ v)
    out = v.transpose(1, 2) if white is not None else v.transpose(1, 2) @ back
    kept = w / (w + 1.0)  # per eigenvector: the stage's gain
    if white is not None:
        spread = white * kept.square().sum(dim=1)
    else:  # trace(G^T S G) = sum_i kept_i^2 (V^T S V)_ii
        spread = (kept.square() * ((noise @ v) * v).sum(dim=1)).sum(dim=1)
    weight = 1.0 / spread.clamp(min=float(noise.diagonal().min()) * 1e-3)
    estimates = (coefficients * kept[:, None, :]) @ out + mean
    if smooth is None:
        return estimates, weight
    scaled = smooth[0] * w
    variant = (coefficients * (scaled / (scaled + 1.0))[:, None, :]) @ out + mean
    return estimates, weight, variant


def _eigh(c: torch.Tensor):
    """Batched eigh of symmetric (B, P, P), on the host: on a GPU torch batches eigh only
    up to 32 x 32 and loops over larger matrices one launch each (pytorch/pytorch#175585;
    unmeasured on a GPU). On a CPU in the calling thread: a pool of threads was no faster
    on 2 cores and slowed the process's later OpenMP work while it lived
    (benchmarks/README.md, issue 22, twenty-third session). A batch float32 cannot resolve
    is done again in float64."""
    if c.device.type != "cpu":
        w, v = _eigh(c.cpu())
        return w.to(c.device), v.to(c.device)
    try:
        return torch.linalg.eigh(c)
    except torch.linalg.LinAlgError:
        w, v = torch.linalg.eigh(c.double())
        return w.to(c.dtype), v.to(c.dtype)


def _whitening(noise: torch.Tensor, white: float | None):
    """(S^-1/2, S^1/2) of the cube's noise covariance S (white: None, None)."""
    if white is not None:
        return None, None
    w, v = torch.linalg.eigh(noise.double())
    w = w.clamp(min=float(w.max()) * 1e-6)
    into = (v * w.rsqrt()) @ v.T
    back = (v * w.sqrt()) @ v.T
    return into.to(noise.dtype), back.to(noise.dtype)
