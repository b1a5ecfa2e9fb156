"""Checkpoints of a restoration: resume after a kill, a preemption or a time limit.

A checkpoint is one file beside the output (`OUTPUT.dipmed-checkpoint`) holding a
fingerprint of the input and the settings, and the states of the stages done so far
(the guide, each finished member, the member being fitted: weights, optimiser, averages,
random-generator state, step, curve). It is written atomically (a temporary file, fsync,
rename) every `every_s` seconds during a fit, after every stage, and at once when a stop
is requested (SIGTERM, which SLURM sends before preemption or the time limit); the fit
then raises `Interrupted`. The same command resumes from it; a checkpoint made from
another input or with other settings is refused (InputError), never used. It is removed
once the output is written.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.nii.gz.dipmed-checkpoint"
    >>> ck = Checkpoint(path, "abc", every_s=0)
    >>> ck.put("guide", [1, 2]); Checkpoint(path, "abc").open().get("guide")
    [1, 2]
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from dipmed.errors import InputError

SUFFIX = ".dipmed-checkpoint"
EVERY_S = 300.0  # seconds between saves during a fit


class Interrupted(Exception):
    """A stop was requested (SIGTERM); the state is saved in the checkpoint."""


class Checkpoint:
    def __init__(self, path: Path, fingerprint: str, *, every_s: float = EVERY_S):
        self.path, self.fingerprint, self.every_s = Path(path), fingerprint, every_s
        self.states: dict = {}
        self.stop_requested = False
        self.deferring = False  # inside stages that save before they stop
        self._saved_at = time.monotonic()

    @classmethod
    def beside(cls, output: Path, fingerprint: str, *, every_s: float = EVERY_S) -> Checkpoint:
        output = Path(output)
        return cls(output.with_name(output.name + SUFFIX), fingerprint, every_s=every_s)

    def open(self) -> Checkpoint:
        """Load the states of an earlier run of the same command, if there is one."""
        if not self.path.exists():
            return self
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as error:  # a torn or foreign file: never silently used
            raise InputError(
                f"cannot read checkpoint {self.path} ({type(error).__name__}); "
                "delete it to start over"
            ) from None
        if not isinstance(saved, dict) or saved.get("fingerprint") != self.fingerprint:
            raise InputError(
                f"checkpoint {self.path} was made from another input or with other "
                "settings; delete it to start over, or write to another output"
            )
        self.states = saved["states"]
        return self

    def get(self, key: str):
        return self.states.get(key)

    def put(self, key: str, value) -> None:
        self.states[key] = value
        self.save()

    def drop(self, key: str) -> None:
        self.states.pop(key, None)

    def due(self) -> bool:
        return self.stop_requested or time.monotonic() - self._saved_at >= self.every_s

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save({"fingerprint": self.fingerprint, "states": self.states}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._saved_at = time.monotonic()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def request_stop(self, *_) -> None:
        """A signal handler: inside `deferring_stops` the fit saves at its next step (or
        stage) and raises Interrupted there; elsewhere Interrupted is raised at once."""
        self.stop_requested = True
        if not self.deferring:
            raise Interrupted("stopped by SIGTERM in a stage that keeps no state")

    @contextmanager
    def deferring_stops(self):
        self.deferring = True
        try:
            yield self
        finally:
            self.deferring = False


def fingerprint(array: np.ndarray, affine: np.ndarray, *parts: object) -> str:
    """What a checkpoint must match: the input's voxels and grid, the settings, the version."""
    from dipmed import __version__

    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    digest.update(np.asarray(affine, dtype=np.float64).tobytes())
    digest.update(repr((__version__, array.shape, *parts)).encode())
    return digest.hexdigest()
