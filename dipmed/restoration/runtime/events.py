"""What a restoration reports while it runs: fit steps and named stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One fit step: its number of the cap, its loss, seconds since the fit began."""

    iteration: int
    max_iters: int
    loss: float
    elapsed_s: float


@dataclass(frozen=True)
class Stage:
    """A named stage and how far it is (done of total parts; total 0: not counted)."""

    name: str
    done: int = 0
    total: int = 0


Listener = Callable[[Progress | Stage], None]  # what a run tells as it goes


def stage_parts(listener: Listener | None, name: str) -> Callable[[int, int], None] | None:
    """A (done, total) callback that tells `listener` Stage(name, done, total), or None."""
    if listener is None:
        return None
    return lambda done, total: listener(Stage(name, done, total))
