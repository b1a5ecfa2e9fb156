"""Progress for people and for cluster logs: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from dipmed.restoration.fit import Progress


class ProgressPrinter:
    """Callable for `fit(progress=...)`: iteration, loss, elapsed and ETA."""

    def __init__(self, stream: TextIO = sys.stderr, *, label: str = "fit"):
        self.stream, self.label = stream, label
        self.interactive = stream.isatty()

    def __call__(self, p: Progress) -> None:
        eta = p.elapsed_s / p.iteration * (p.max_iters - p.iteration)
        text = (
            f"{self.label}: iteration {p.iteration}/{p.max_iters}  loss {p.loss:.3e}  "
            f"elapsed {p.elapsed_s:.0f}s  ETA <= {eta:.0f}s"
        )
        if self.interactive:
            done = int(30 * p.iteration / p.max_iters)
            self.stream.write(f"\r[{'#' * done}{'.' * (30 - done)}] {text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
