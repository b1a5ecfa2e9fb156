"""One run's context: the device, who listens to its progress, where it keeps its state.

Every method takes a `RunContext`; a run without a checkpoint gets `NoCheckpoint`, whose
methods do nothing, so no stage checks for None.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from dipmed.errors import InputError
from dipmed.restoration.runtime.checkpoint import Checkpoint
from dipmed.restoration.runtime.events import Listener, Stage, stage_parts


class NoCheckpoint:
    """A checkpoint that keeps nothing: nothing to resume, never due."""

    path = None

    def get(self, key: str):
        return None

    def put(self, key: str, value) -> None:
        pass

    def keep(self, key: str, value, where: str) -> None:
        pass

    def drop(self, key: str) -> None:
        pass

    def due(self) -> bool:
        return False

    def deferring_stops(self):
        return nullcontext(self)


def silent(event) -> None:
    pass


@dataclass(frozen=True)
class RunContext:
    """What a method needs besides the volume, the task and the settings.

    `monitor(iteration, output)` sees every DIP epoch's output in image units (benchmarks
    score it against a reference); `candidates` keeps guided denoising's candidate
    images (benchmarks)."""

    device: torch.device
    listener: Listener = silent
    checkpoint: Checkpoint | NoCheckpoint = field(default_factory=NoCheckpoint)
    monitor: Callable[[int, np.ndarray], None] | None = None
    candidates: bool = False

    def stage(self, name: str) -> None:
        self.listener(Stage(name))

    def parts(self, name: str) -> Callable[[int, int], None] | None:
        """A (done, total) callback for the parts of stage `name`."""
        return stage_parts(self.listener, name)


def pick_device(name: str) -> torch.device:
    """ "auto" (CUDA when visible, else the CPU), "cpu" or "cuda" (InputError when absent)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto"
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        torch.backends.cudnn.benchmark = True
    return torch.device(name)
