"""One resumable training loop's state in a checkpoint, shared by every loop that trains a
network (the DIP fit, the guided members, internal sr).

The state under `key`: the network's and the optimiser's state, the random generator's,
the step, and the loop's own values (averages, curves, ...). It is saved when the
checkpoint is due (and at once on a stop request, which then raises Interrupted).
"""

from __future__ import annotations

import torch

from dipmed.restoration.runtime.checkpoint import host_copy, mapped


class Resumable:
    """`resume()` once before the loop, `save(step, **values)` after every step."""

    def __init__(self, checkpoint, key: str, label: str, net, optimizer, generator):
        self.checkpoint, self.key, self.label = checkpoint, key, label
        self.net, self.optimizer, self.generator = net, optimizer, generator

    def resume(self) -> tuple[dict | None, int]:
        """(the saved values, the first step to run): (None, 1) when nothing is saved.
        The network, optimiser and generator are restored in place."""
        state = self.checkpoint.get(self.key)
        if state is None:
            return None, 1
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        return state["values"], state["step"] + 1

    def save(self, step: int, **values) -> None:
        if not self.checkpoint.due():
            return
        state = {
            "step": step,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "values": values,
        }
        self.checkpoint.keep(self.key, host_copy(state), f"at step {step} of {self.label}")


def to_device(values, device: torch.device):
    """Saved tensors (in dicts, lists, tuples, dataclasses) back on the loop's device."""
    return mapped(values, torch.Tensor, lambda t: t.to(device))
