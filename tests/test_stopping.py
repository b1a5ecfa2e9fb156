"""Stopping rules on synthetic fit curves: they stop where the theory says."""

from __future__ import annotations

import math

import pytest
import torch

from dipmed.restoration.dip.stopping import DiscrepancyStop, NoStop, VarianceStop


def _run(stopper, misfits, outputs=None, cap=2000):
    best = None
    for iteration in range(1, cap + 1):
        output = outputs(iteration) if outputs else torch.zeros(1)
        decision = stopper.observe(iteration, misfits(iteration), output)
        best = iteration if decision.is_best else best
        if decision.stop:
            return iteration, best
    return None, best


def test_discrepancy_stops_where_the_misfit_reaches_the_noise_level():
    noise_variance = 0.01
    # misfit = noise floor below the signal's decaying misfit: crosses 1.0 x sigma^2 at t*
    misfits = lambda t: 0.9 * noise_variance + 0.5 * math.exp(-t / 40)  # noqa: E731
    crossing = math.ceil(-40 * math.log(0.1 * noise_variance / 0.5))
    stop, best = _run(DiscrepancyStop(noise_variance=noise_variance, smoothing=0.0), misfits)
    assert stop == crossing and best == crossing


def test_discrepancy_smoothing_delays_the_stop_a_little():
    misfits = lambda t: 0.009 + 0.5 * math.exp(-t / 40)  # noqa: E731
    sharp, _ = _run(DiscrepancyStop(noise_variance=0.01, smoothing=0.0), misfits)
    smooth, _ = _run(DiscrepancyStop(noise_variance=0.01, smoothing=0.9), misfits)
    assert sharp < smooth <= sharp + 20


def test_discrepancy_never_stops_above_the_noise_level():
    stop, best = _run(DiscrepancyStop(noise_variance=0.01), lambda t: 0.02, cap=500)
    assert stop is None and best == 500


def test_variance_rule_finds_the_minimum_of_the_output_variance():
    generator = torch.Generator().manual_seed(0)
    # outputs jitter with an amplitude that falls to a minimum at t=300, then rises again
    amplitude = lambda t: 0.01 + abs(t - 300) / 300  # noqa: E731
    outputs = lambda t: amplitude(t) * torch.randn(4096, generator=generator)  # noqa: E731
    stop, best = _run(VarianceStop(alpha=0.1, patience=100), lambda t: 0.0, outputs)
    assert 260 <= best <= 340
    assert stop == best + 100


def test_no_stop_runs_to_the_cap():
    assert _run(NoStop(), lambda t: 0.0, cap=50) == (None, 50)


def test_discrepancy_needs_a_positive_noise_level():
    with pytest.raises(ValueError, match="noise_variance"):
        DiscrepancyStop(noise_variance=0.0)
