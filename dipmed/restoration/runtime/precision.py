"""One precision policy for every training loop (the DIP fit, the guided members, internal
sr): the network's forward pass under bf16 autocast where it is enabled, the losses,
averages and optimiser state in fp32, and an optimiser step skipped when a gradient is
not finite (as AMP's gradient scaler skips it).

Where bf16 is enabled: the DIP fit on CUDA; the members when `guided.precision` is bf16
(fp32 by default, on every device); internal sr never.
"""

from __future__ import annotations

import torch


def autocast(device: torch.device, bf16: bool):
    """The context of a forward pass: bf16 autocast when `bf16`, else plain fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def step_if_finite(optimizer: torch.optim.Optimizer) -> bool:
    """The optimiser's step, skipped (False) when a gradient is not finite.

    bf16 autocast on the CPU gave a non-finite gradient now and then (a tiny phantom: 1
    run in 6, at a random step); one such step makes every weight NaN. fp32 gradients
    are finite, so its steps are never skipped."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
    if not all(bool(torch.isfinite(g).all()) for g in grads if g is not None):
        return False
    optimizer.step()
    return True
