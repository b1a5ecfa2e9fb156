"""Automatic stopping rules that need no ground truth.

DIP fits the signal before the noise, so quality peaks and then falls. A rule watches
the fit and says (1) whether the current iterate is the best so far and (2) whether to
stop. Rules:

- "discrepancy": the discrepancy principle. Once the smoothed data misfit
  mean((A(x) - y)^2) falls to `tau` times the noise variance, the signal is explained and
  what is left is noise: stop there. Needs a noise estimate (given or estimated).
- "variance": ES-EMV (Wang et al., 2021). The exponential moving variance of the outputs
  falls while the fit settles on the signal and rises when it starts to chase noise;
  the best iterate is at its minimum; stop after `patience` iterations without a new one.
- "none": run to the iteration cap; the last iterate is returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Decision:
    is_best: bool  # keep this iterate as the result so far
    stop: bool  # end the fit now


class DiscrepancyStop:
    """Stop when the smoothed misfit reaches `tau` x noise variance (normalised units)."""

    name = "discrepancy"

    def __init__(self, *, noise_variance: float, tau: float = 1.0, smoothing: float = 0.9):
        if noise_variance <= 0:
            raise ValueError(f"noise_variance must be > 0, got {noise_variance}")
        self.threshold = tau * noise_variance
        self.smoothing = smoothing
        self._smoothed: float | None = None

    def observe(self, iteration: int, misfit: float, output: torch.Tensor) -> Decision:
        s = (
            misfit
            if self._smoothed is None
            else (self.smoothing * self._smoothed + (1 - self.smoothing) * misfit)
        )
        self._smoothed = s
        return Decision(is_best=True, stop=s <= self.threshold)


class VarianceStop:
    """ES-EMV: best iterate at the minimum of the outputs' exponential moving variance.

    The moving variance starts at zero, so the first `3 / alpha` iterations only warm it
    up: during them every iterate is taken, and no minimum is recorded.
    """

    name = "variance"

    def __init__(self, *, alpha: float = 0.1, patience: int = 100):
        self.alpha, self.patience = alpha, patience
        self.warmup = math.ceil(3 / alpha)
        self._mean: torch.Tensor | None = None
        self._var: torch.Tensor | None = None
        self._best_score, self._best_iteration = float("inf"), 0

    def observe(self, iteration: int, misfit: float, output: torch.Tensor) -> Decision:
        x = output.detach().float()
        if self._mean is None:
            self._mean, self._var = x.clone(), torch.zeros_like(x)
        delta = x - self._mean
        self._mean += self.alpha * delta
        self._var = (1 - self.alpha) * (self._var + self.alpha * delta * delta)
        if iteration <= self.warmup:
            self._best_iteration = iteration
            return Decision(is_best=True, stop=False)
        score = float(self._var.mean())
        is_best = score < self._best_score
        if is_best:
            self._best_score, self._best_iteration = score, iteration
        return Decision(is_best=is_best, stop=iteration - self._best_iteration >= self.patience)


class NoStop:
    """Run to the cap; every iterate replaces the previous one."""

    name = "none"

    def observe(self, iteration: int, misfit: float, output: torch.Tensor) -> Decision:
        return Decision(is_best=True, stop=False)
