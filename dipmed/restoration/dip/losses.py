"""Data-fidelity losses in measurement space (lower is better).

- "mse": mean squared error; the Gaussian negative log-likelihood up to constants.
- "l1": mean absolute error; robust to outliers.
- "rician": the Rician negative log-likelihood of magnitude MRI data y given the
  noise-free magnitude x >= 0 and noise level sigma, scaled by sigma^2 so that it
  approaches MSE / 2 at high SNR:
      sigma^2 * [ (x^2 + y^2) / (2 sigma^2) - log I0(x y / sigma^2) ]   (+ const)
  which removes the Rician bias (a noise floor sigma * sqrt(pi / 2) in the background).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_loss(name: str, *, sigma: float) -> Loss:
    """The loss named `name`; `sigma` (normalised units) is used by "rician" only."""
    if name == "mse":
        return lambda predicted, measured: torch.mean((predicted - measured) ** 2)
    if name == "l1":
        return lambda predicted, measured: torch.mean(torch.abs(predicted - measured))
    if name == "rician":
        return lambda predicted, measured: rician_nll(predicted, measured, sigma)
    raise ValueError(f"loss must be mse, l1 or rician, got {name!r}")


def rician_nll(predicted: torch.Tensor, measured: torch.Tensor, sigma: float) -> torch.Tensor:
    variance = sigma * sigma
    x = torch.abs(predicted)  # the magnitude is never negative
    z = x * measured.clamp(min=0) / variance
    # log I0(z) = log(i0e(z)) + z, stable for large z
    log_i0 = torch.log(torch.special.i0e(z)) + z
    return torch.mean(0.5 * (x * x + measured * measured) - variance * log_i0)
