"""The final stage's pilot echo taken out of its covariance (`gaussian`, `guide.echo`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dipmed.restoration.guided import collaborative, gaussian, transform
from dipmed.restoration.guided.guide import Guide, echo
from dipmed.restoration.guided.risk import probe
from dipmed.restoration.noise.model import NoiseModel
from dipmed.restoration.runtime.context import RunContext

SPECTRA = {"white": None, "coloured": torch.linspace(0.4, 2.0, 64)}


def _noise(kind):
    """(S, s): a cube's noise covariance, and its variance where white."""
    if SPECTRA[kind] is None:
        return torch.eye(64), 1.0
    return transform.cube_noise(SPECTRA[kind], 4), None


def _groups(seed: int, echo_std: float):
    """Groups of 64 cubes: a signal in a 6-dimensional subspace per group, the data with
    the noise S, the pilot the signal plus an echo-like error of `echo_std`, and the echo
    cubes an independent draw of that error (what `guide.echo` measures)."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(32, 6, 64, generator=g)
    signal = torch.randn(32, 64, 6, generator=g) * 3.0 @ basis / 8.0
    noisy = signal + torch.randn(32, 64, 64, generator=g)
    pilot = signal + echo_std * torch.randn(32, 64, 64, generator=g)
    heard = echo_std * torch.randn(32, 64, 64, generator=g)
    return signal, noisy, pilot, heard


@pytest.mark.parametrize("kind", SPECTRA)
def test_a_silent_echo_gives_the_stage_and_its_exact_smoother_variant(kind):
    """With an echo of zeros the eigen route is the Cholesky route: the stage and its
    weights to float rounding, the smoother variant within the series' tolerance."""
    noise, white = _noise(kind)
    _, noisy, pilot, _ = _groups(0, 0.5)
    smooth = gaussian.series(0.8)
    today = gaussian.estimate(noisy, pilot, noise, white, smooth=smooth)
    clipped = gaussian.estimate(noisy, pilot, noise, white, smooth=smooth, echo=0 * pilot)
    scale = float(noisy.abs().max())
    assert float((today[0] - clipped[0]).abs().max()) < 1e-4 * scale
    assert float(((today[1] - clipped[1]) / today[1]).abs().max()) < 1e-3
    assert float((today[2] - clipped[2]).abs().max()) < 2 * gaussian.SERIES_TOLERANCE * scale


@pytest.mark.parametrize("kind", SPECTRA)
def test_the_echo_out_brings_the_stage_closer_to_the_signal(kind):
    """A pilot that carries an echo over-states the signal's covariance; its expected
    share taken out (an independent draw of the echo), the stage and its variant come
    closer to the signal."""
    noise, white = _noise(kind)
    signal, noisy, pilot, heard = _groups(1, 0.7)
    smooth = gaussian.series(0.8)
    before = gaussian.estimate(noisy, pilot, noise, white, smooth=smooth)
    after = gaussian.estimate(noisy, pilot, noise, white, smooth=smooth, echo=heard)
    for b, a in ((before[0], after[0]), (before[2], after[2])):
        assert float((a - signal).square().mean()) < 0.9 * float((b - signal).square().mean())


def test_an_echo_that_dwarfs_the_pilot_leaves_the_group_mean_not_a_blow_up():
    """C - E is indefinite where the echo's covariance exceeds the pilot's: its negative
    eigenvalues clipped, the gain is 0 there (an echo twice the pilot: everywhere) and
    each estimate the group's mean (unclipped, the smoother variant's gain reached 960)."""
    _, noisy, pilot, _ = _groups(2, 0.3)
    plain, weight, variant = gaussian.estimate(
        noisy, pilot, torch.eye(64), 1.0, smooth=gaussian.series(0.8), echo=2.0 * pilot
    )
    mean = noisy.mean(dim=1, keepdim=True).expand_as(noisy)
    assert float((plain - mean).abs().max()) < 1e-4
    assert float((variant - mean).abs().max()) < 1e-4
    assert bool(torch.isfinite(weight).all())


def test_the_guides_echo_is_its_response_to_a_probe_of_its_own():
    """`guide.echo`: (g(u + eps c) - g(u)) / eps with c from its own stream, not the risk's
    probe; for a linear stand-in of the guide it is the guide applied to c."""
    rng = np.random.default_rng(0)
    u = rng.normal(0, 1, (14, 13, 12)).astype(np.float32)
    model = NoiseModel(sigma=1.0, correlation=None, source="given")
    image = collaborative.denoise(u, 1.0)
    heard = echo(
        u, Guide(image, None, None, model), 1.0, "collaborative", RunContext(torch.device("cpu"))
    )
    assert heard.shape == u.shape and heard.dtype == np.float32
    b = probe(u.shape)
    assert abs(float(np.corrcoef(heard.ravel(), b.ravel())[0, 1])) < 0.1  # not the risk's
    assert 0.0 < float(heard.var()) < 1.0  # the guide passes part of a unit noise
