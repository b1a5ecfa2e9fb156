"""Progress for people and for cluster logs: a bar on a terminal, plain lines otherwise.

Every stage prints a line when it begins; while it runs, a line every `every` fit steps or
every INTERVAL_S seconds, whichever comes first, so a log never goes quiet for long.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from dipmed.restoration.runtime.events import Progress, Stage

INTERVAL_S = 10.0  # longest pause between two plain lines while work goes on


class ProgressPrinter:
    """Callable for `restore(progress=...)`: stages, and fit steps with loss and ETA."""

    def __init__(self, stream: TextIO | None = None, *, label: str = "fit", every: int = 50):
        stream = stream or sys.stderr  # looked up now: sys.stderr may have been replaced
        self.stream, self.label, self.every = stream, label, every
        self.interactive = stream.isatty()
        self.start = time.monotonic()
        self.last, self.stage = float("-inf"), None

    def __call__(self, event: Progress | Stage) -> None:
        now = time.monotonic()
        if isinstance(event, Stage):
            new = event.name != self.stage
            self.stage = event.name
            due = new or event.done == event.total or now - self.last >= INTERVAL_S
            if due:
                count = f" {event.done}/{event.total}" if event.total else ""
                fraction = event.done / event.total if event.total else None
                self._write(f"{event.name}{count}", fraction, now, new)
            return
        p = event
        new = self.stage != "fit"
        self.stage = "fit"
        due = p.iteration % self.every == 0 or p.iteration == p.max_iters
        if not (new or due or now - self.last >= INTERVAL_S):
            return
        eta = p.elapsed_s / p.iteration * (p.max_iters - p.iteration)
        text = f"iteration {p.iteration}/{p.max_iters}  loss {p.loss:.3e}  ETA <= {eta:.0f}s"
        self._write(text, p.iteration / p.max_iters, now, new)

    def _write(self, text: str, fraction: float | None, now: float, new: bool) -> None:
        line = f"{self.label}: {text}  elapsed {now - self.start:.0f}s"
        if self.interactive:
            bar = "" if fraction is None else f"[{'#' * int(30 * fraction):.<30}] "
            self.stream.write("\n" if new and self.last > float("-inf") else "\r")
            self.stream.write(f"{bar}{line}\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last = now

    def close(self) -> None:
        """Ends a bar on a terminal (the next output starts on its own line)."""
        if self.interactive and self.last > float("-inf"):
            self.stream.write("\n")
            self.stream.flush()
        self.last = float("-inf")
