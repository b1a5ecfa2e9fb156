"""The fit loop's contract: stop rule, iteration cap, time limit, monitor."""

from __future__ import annotations

import torch

from dipmed.restoration.dip.fit import STEP_VOXELS, FitSettings, _batches, fit
from dipmed.restoration.dip.losses import make_loss
from dipmed.restoration.dip.prior import DeepPrior
from dipmed.restoration.dip.stopping import Decision, NoStop
from dipmed.restoration.networks import NetworkConfig
from dipmed.restoration.operators import Identity

NET = NetworkConfig(features=(4, 4, 8, 8, 16, 4), input_channels=2)


class StopAt:
    """A rule that fires at a fixed iteration and names an earlier best."""

    def __init__(self, stop: int, best: int):
        self.stop_at, self.best = stop, best

    def observe(self, iteration, misfit, output):
        return Decision(is_best=iteration <= self.best, stop=iteration == self.stop_at)


def _fit(stopper, **settings):
    generator = torch.Generator().manual_seed(0)
    prior = DeepPrior((16, 17, 3), mode="2d", axis=2, config=NET, generator=generator)
    target = torch.rand((1, 1, 16, 17, 3), generator=generator)
    seen = []
    result = fit(
        prior,
        target,
        Identity(),
        make_loss("mse", sigma=0.1),
        stopper,
        FitSettings(**settings),
        generator=generator,
        monitor=lambda i, out: seen.append(i),
    )
    return result, seen


def test_the_rule_stops_the_fit_and_its_best_iterate_is_returned():
    result, seen = _fit(StopAt(stop=6, best=4), max_iters=20)
    assert (result.iterations, result.best_iteration, result.stop_reason) == (6, 4, "rule")
    assert seen == list(range(1, 7)) and len(result.losses) == 6


def test_run_past_stop_goes_to_the_cap_but_keeps_the_rules_choice():
    stopped, _ = _fit(StopAt(stop=6, best=4), max_iters=20)
    result, seen = _fit(StopAt(stop=6, best=4), max_iters=20, run_past_stop=True)
    assert len(seen) == 20 and len(result.losses) == 20
    assert (result.iterations, result.best_iteration) == (6, 4)
    assert torch.equal(torch.from_numpy(result.output), torch.from_numpy(stopped.output))


def test_cap_and_time_limit():
    result, _ = _fit(NoStop(), max_iters=5)
    assert (result.iterations, result.stop_reason) == (5, "max_iters")
    result, _ = _fit(NoStop(), max_iters=10_000, time_limit_s=1e-9)
    assert result.stop_reason == "time_limit" and result.iterations == 1


def test_misfit_falls_while_fitting():
    result, _ = _fit(NoStop(), max_iters=30, learning_rate=0.02)
    assert result.misfits[-1] < result.misfits[0]


def test_a_prior_scaled_to_a_small_misfit_descends_from_its_anchor():
    """An anchor already within a few 1e-3 of the data (denoised slices): an unscaled
    generator's first Adam steps throw the output far off and the fit spends its
    iterations coming back; scaled to the misfit, it descends from the anchor."""
    generator = torch.Generator().manual_seed(0)
    target = torch.rand((1, 1, 32, 32, 3), generator=generator)
    anchor = target[0, 0] + 2e-3 * torch.randn((32, 32, 3), generator=generator)
    start = float(torch.mean((anchor - target[0, 0]) ** 2))
    ends = {}
    for scale in (1.0, 2e-3):
        prior = DeepPrior(
            (32, 32, 3),
            mode="2d",
            axis=2,
            config=NET,
            generator=torch.Generator().manual_seed(1),
            anchor=anchor,
            output_scale=scale,
        )
        result = fit(
            prior,
            target,
            Identity(),
            make_loss("mse", sigma=1e-3),
            NoStop(),
            FitSettings(max_iters=40, ema=0.0),
            generator=torch.Generator().manual_seed(2),
        )
        ends[scale] = float(result.misfits[-1])
    assert ends[2e-3] < start < ends[1.0]


def test_2d_steps_hold_a_bounded_number_of_voxels_and_cover_every_slice():
    # 12 slices of 512x512 (3.1 M voxels): about STEP_VOXELS per step, each slice once
    generator = torch.Generator().manual_seed(0)
    prior = DeepPrior((12, 512, 512), mode="2d", axis=0, config=NET, generator=generator)
    batches = _batches(prior, 0, generator)
    assert STEP_VOXELS // (512 * 512) == 4
    assert [len(b) for b in batches] == [4, 4, 4]
    assert sorted(torch.cat(batches).tolist()) == list(range(12))
    small = DeepPrior((16, 17, 3), mode="2d", axis=2, config=NET, generator=generator)
    assert [len(b) for b in _batches(small, 0, generator)] == [3]  # a crop: one step
    assert [len(b) for b in _batches(prior, 5, generator)] == [5, 5, 2]  # as asked
