"""The DIP fit loop: arrays in, result out; no files, no printing.

    theta* = argmin_theta  L(A(f_theta(z + eta)), y),   eta ~ N(0, perturb^2) each step

One "epoch" renders every slice once (in 3D mode, one step). After each epoch the output
EMA is updated, the stopping rule observes it, and the best iterate is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from dipmed.restoration.dip.losses import Loss
from dipmed.restoration.dip.prior import DeepPrior
from dipmed.restoration.runtime.context import NoCheckpoint
from dipmed.restoration.runtime.events import Progress
from dipmed.restoration.runtime.precision import autocast, step_if_finite
from dipmed.restoration.runtime.training import Resumable, to_device

STEP_VOXELS = 2**20  # 2D mode, batch_slices 0: about this many output voxels per step


@dataclass(frozen=True)
class FitSettings:
    max_iters: int = 2000  # iteration cap (epochs)
    learning_rate: float = 0.005  # Adam step size (0.005 beat 0.01 and 0.02: benchmarks)
    perturb: float = 1 / 30  # std of the noise added to z at every step (DIP default)
    ema: float = 0.9  # output exponential moving average decay (0 disables it)
    batch_slices: int = 0  # 2D mode: slices per step (0: as many as hold STEP_VOXELS)
    time_limit_s: float = 0.0  # wall-clock limit in seconds (0: none)
    log_every: int = 50  # epochs between progress reports
    run_past_stop: bool = False  # benchmarks: go on to the cap after the rule fires


@dataclass(frozen=True)
class FitResult:
    """The restored volume (normalised units, X Y Z) and how the fit went."""

    output: np.ndarray
    best_iteration: int  # the iterate returned
    iterations: int  # epochs run until the stop
    stop_reason: str  # "rule" | "max_iters" | "time_limit"
    seconds: float
    losses: np.ndarray = field(repr=False)  # training loss per epoch
    misfits: np.ndarray = field(repr=False)  # mean((A(x) - y)^2) per epoch, normalised units
    peak_memory_bytes: int = 0  # CUDA only


def fit(
    prior: DeepPrior,
    measurement: torch.Tensor,
    operator,
    loss_fn: Loss,
    stopper,
    settings: FitSettings,
    *,
    generator: torch.Generator,
    progress: Callable[[Progress], None] | None = None,
    monitor: Callable[[int, torch.Tensor], None] | None = None,
    checkpoint=None,
) -> FitResult:
    """Fit `prior` so that A(prior()) matches `measurement` (shape (1, 1, X, Y, Z)).

    `monitor(iteration, smoothed_output)` sees every epoch's output (benchmarks use it
    with a reference); with `settings.run_past_stop` the loop goes on to the cap after
    the rule fires, but still returns the iterate the rule chose. With a `checkpoint`,
    the loop's whole state is saved under "fit" when it is due and resumed from there.
    """
    optimizer = torch.optim.Adam(prior.parameters(), lr=settings.learning_rate)
    saver = Resumable(checkpoint or NoCheckpoint(), "fit", "the fit", prior, optimizer, generator)
    loop = _Loop.start(prior, measurement.device, stopper, saver)
    for iteration in range(loop.first, settings.max_iters + 1):
        loss, misfit = _epoch(
            prior, loop.current, measurement, operator, loss_fn, optimizer, settings, generator
        )
        smoothed = loop.record(iteration, loss, misfit, settings.ema)
        if monitor is not None:
            monitor(iteration, smoothed)
        loop.observe(iteration, misfit, smoothed)
        elapsed = time.perf_counter() - loop.start_s
        if progress:  # every step: the printer decides what to show
            progress(Progress(iteration, settings.max_iters, loss, elapsed))
        if loop.stopped_at is not None and not settings.run_past_stop:
            break
        if settings.time_limit_s and elapsed > settings.time_limit_s:
            loop.reason = "time_limit" if loop.stopped_at is None else loop.reason
            break
        saver.save(iteration, loop=loop.state(elapsed))
    iterations, seconds = loop.stopped_at or (len(loop.losses), time.perf_counter() - loop.start_s)
    return FitResult(
        output=loop.best[0, 0].float().cpu().numpy(),
        best_iteration=loop.best_iteration,
        iterations=iterations,
        stop_reason=loop.reason,
        seconds=seconds,
        losses=np.asarray(loop.losses),
        misfits=np.asarray(loop.misfits),
        peak_memory_bytes=_peak_memory(measurement.device),
    )


class _Loop:
    """The fit loop's state: the current and smoothed output, the best iterate, the
    curves, the stop rule and where it fired."""

    def __init__(self, prior, device, stopper):
        self.current = torch.zeros((1, 1, *prior.shape), device=device)
        self.ema, self.best = torch.zeros_like(self.current), None
        self.stopper, self.losses, self.misfits = stopper, [], []
        self.best_iteration, self.stopped_at, self.reason = 0, None, "max_iters"
        self.first, self.start_s = 1, time.perf_counter()

    @classmethod
    def start(cls, prior, device, stopper, saver: Resumable) -> _Loop:
        """A new loop, or the saved one (resumed where it stopped)."""
        loop = cls(prior, device, stopper)
        saved, loop.first = saver.resume()
        if saved is not None:
            elapsed = saved["loop"].pop("elapsed")
            loop.__dict__.update(to_device(saved["loop"], device))
            loop.losses, loop.misfits = list(loop.losses), list(loop.misfits)
            loop.start_s -= elapsed
        return loop

    def record(self, iteration: int, loss: float, misfit: float, decay: float) -> torch.Tensor:
        """Log the epoch; the smoothed output, bias-corrected like Adam's moments (early
        iterates are not dragged toward zero)."""
        self.ema.lerp_(self.current, 1 - decay)
        self.losses.append(loss)
        self.misfits.append(misfit)
        return self.ema / (1 - decay**iteration) if decay > 0 else self.current

    def observe(self, iteration: int, misfit: float, smoothed: torch.Tensor) -> None:
        """The stop rule sees the epoch (until it has fired); the best iterate is kept."""
        if self.stopped_at is not None:
            return
        decision = self.stopper.observe(iteration, misfit, smoothed)
        if decision.is_best:
            self.best, self.best_iteration = smoothed.clone(), iteration
        if decision.stop:
            self.stopped_at, self.reason = (iteration, time.perf_counter() - self.start_s), "rule"

    def state(self, elapsed: float) -> dict:
        keys = ("current", "ema", "best", "stopper", "losses", "misfits", "best_iteration")
        return {k: getattr(self, k) for k in keys} | {
            "stopped_at": self.stopped_at,
            "reason": self.reason,
            "elapsed": elapsed,
        }


def _epoch(prior, current, measurement, operator, loss_fn, optimizer, settings, generator):
    """One pass over every slice (one step in 3D mode); returns mean loss and misfit."""
    epoch_loss = epoch_misfit = 0.0
    for index in _batches(prior, settings.batch_slices, generator):
        out, loss, misfit = _step(
            prior,
            index,
            measurement,
            operator,
            loss_fn,
            optimizer,
            settings.perturb,
            generator,
            measurement.device,
        )
        _place(current, out, index, prior.axis)
        share = (1 if index is None else len(index)) / prior.slice_count
        epoch_loss += loss * share
        epoch_misfit += misfit * share
    return epoch_loss, epoch_misfit


def _step(prior, index, measurement, operator, loss_fn, optimizer, perturb, generator, device):
    target = measurement if index is None else measurement.index_select(2 + prior.axis, index)
    op = operator if index is None else operator.take(prior.axis, index)
    with autocast(device, device.type == "cuda"):  # runtime.precision: bf16 on CUDA
        out = prior(index, perturb=perturb, generator=generator)
    out = out.float()
    predicted = op.forward(out)
    loss = loss_fn(predicted, target)
    misfit = torch.mean((predicted.detach() - target) ** 2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    step_if_finite(optimizer)
    return out.detach(), float(loss.detach()), float(misfit)


def _batches(prior: DeepPrior, size: int, generator: torch.Generator):
    """The slices of each step of an epoch, in a random order (2D mode; 3D: one step).

    `size` 0: as many slices as hold about STEP_VOXELS, so that a step's memory does not
    grow with the volume (`inpaint` of the whole MNI T1, all 189 slices in one step: 13.3 GB
    peak; steps of 22 slices: 2.9 GB, benchmarks/steps_2d.py)."""
    count = prior.slice_count
    if size <= 0 and prior.mode != "3d":
        size = max(1, STEP_VOXELS * count // int(np.prod(prior.shape)))
    if prior.mode == "3d" or size >= count:
        return [None] if prior.mode == "3d" else [torch.arange(count)]
    order = torch.randperm(count, generator=generator)
    return [order[i : i + size].sort().values for i in range(0, count, size)]


def _place(volume: torch.Tensor, out: torch.Tensor, index, axis: int) -> None:
    if index is None:
        volume.copy_(out)
    else:
        volume.index_copy_(2 + axis, index.to(volume.device), out)


def _peak_memory(device: torch.device) -> int:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else 0
