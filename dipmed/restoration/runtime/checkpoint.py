"""Checkpoints of a restoration: resume after a kill, a preemption or a time limit.

A checkpoint is a folder beside the output (`OUTPUT.dipmed-checkpoint`) holding a
fingerprint of the input and the settings, and one file per state of the stages done so
far (the guide, each finished member, the member or fit in progress: weights, optimiser,
averages, random-generator state, step, curve). Each file is written atomically (a
temporary file, fsync, rename): the fit's state every `every_s` seconds, each stage
when it is done, and at once when a stop is requested (SIGTERM, which SLURM sends before
preemption or the time limit); the fit then raises `Interrupted`. The same command
resumes from it; a checkpoint made from another input or with other settings is refused
(InputError), never used. It is removed once the output is written.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.nii.gz.dipmed-checkpoint"
    >>> ck = Checkpoint(path, "abc", every_s=0)
    >>> ck.put("guide", [1, 2]); Checkpoint(path, "abc").open().get("guide")
    [1, 2]
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from dipmed.errors import InputError

SUFFIX = ".dipmed-checkpoint"
FORMAT = 4  # the layout of saved states (4: the guide with its variant and noise
# variance); in the fingerprint
EVERY_S = 300.0  # seconds between saves during a fit


class Interrupted(Exception):
    """A stop was requested (SIGTERM); the state is saved in the checkpoint."""


class Checkpoint:
    """A folder of states, one file per key (a finished stage is written once and not held
    in memory; the state of the fit in progress is rewritten when it is due)."""

    def __init__(self, path: Path, fingerprint: str, *, every_s: float = EVERY_S):
        self.path, self.fingerprint, self.every_s = Path(path), fingerprint, every_s
        self.stop_requested = False
        self.deferring = False  # inside stages that save before they stop
        self._saved_at = time.monotonic()

    @classmethod
    def beside(cls, output: Path, fingerprint: str, *, every_s: float = EVERY_S) -> Checkpoint:
        output = Path(output)
        return cls(output.with_name(output.name + SUFFIX), fingerprint, every_s=every_s)

    @property
    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.path.glob("*.pt")) if self.path.is_dir() else []

    def open(self) -> Checkpoint:
        """Check the checkpoint of an earlier run, if there is one: it must be this one's."""
        if not self.path.exists():
            return self
        mark = self.path / "fingerprint"
        if not self.path.is_dir() or not mark.is_file():
            raise InputError(f"{self.path} is not a dipmed checkpoint; delete it to start over")
        if mark.read_text().strip() != self.fingerprint:
            raise InputError(
                f"checkpoint {self.path} was made from another input or with other "
                "settings; delete it to start over, or write to another output"
            )
        return self

    def get(self, key: str):
        file = self.path / f"{key}.pt"
        if not file.is_file():
            return None
        try:
            return _unwrapped(torch.load(file, map_location="cpu", weights_only=False))
        except Exception as error:  # never silently used
            raise InputError(
                f"cannot read {file} ({type(error).__name__}); delete {self.path} to start over"
            ) from None

    def put(self, key: str, value) -> None:
        if not (self.path / "fingerprint").is_file():
            self.path.mkdir(parents=True, exist_ok=True)
            _atomic(self.path / "fingerprint", lambda f: f.write(self.fingerprint.encode()))
        _atomic(self.path / f"{key}.pt", lambda f: torch.save(_wrapped(value), f))
        self._saved_at = time.monotonic()

    def keep(self, key: str, value, where: str) -> None:
        """Save a finished stage; a requested stop takes effect here (Interrupted)."""
        self.put(key, value)
        if self.stop_requested:
            raise Interrupted(f"stopped {where}")

    def drop(self, key: str) -> None:
        (self.path / f"{key}.pt").unlink(missing_ok=True)

    def due(self) -> bool:
        return self.stop_requested or time.monotonic() - self._saved_at >= self.every_s

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

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


def _atomic(path: Path, write) -> None:
    """write(file) into a temporary file beside `path`, fsync, then rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Array:
    """A NumPy array saved as the tensor that shares its memory. Pickled as it is, an array
    is copied into the pickle's bytes, which torch.save holds whole before writing (a
    guide of 2.5 volume-sized arrays cost 13.5 of them at the save); a tensor's storage is
    written straight from its memory."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


def _wrapped(tree):
    """`tree` with every NumPy array (in dicts, lists, tuples, dataclasses) as an _Array."""
    return mapped(tree, np.ndarray, _as_array)


def _unwrapped(tree):
    """The inverse of `_wrapped`: the arrays back (sharing the loaded tensors' memory)."""
    return mapped(tree, _Array, lambda a: a.tensor.numpy())


def _as_array(array: np.ndarray) -> _Array:
    array = array if array.flags.writeable else array.copy()
    return _Array(torch.from_numpy(np.ascontiguousarray(array)))


def mapped(tree, leaf: type, fn):
    """`tree` with `fn` applied to every `leaf` in its dicts, lists, tuples, dataclasses."""
    if isinstance(tree, leaf):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: mapped(v, leaf, fn) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(mapped(v, leaf, fn) for v in tree)
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        fields = dataclasses.fields(tree)
        return dataclasses.replace(
            tree, **{f.name: mapped(getattr(tree, f.name), leaf, fn) for f in fields}
        )
    return tree


def host_copy(tree):
    """A copy of `tree` (tensors, in dicts, lists and tuples) with every tensor detached,
    on the host and cloned: a saved state shares no memory with the live fit."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu().clone()
    if isinstance(tree, dict):
        return {k: host_copy(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(host_copy(v) for v in tree)
    return copy.deepcopy(tree)


def fingerprint(array: np.ndarray, affine: np.ndarray, *parts: object) -> str:
    """What a checkpoint must match: the input's voxels and grid, the settings, the version."""
    from dipmed import __version__

    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    digest.update(np.asarray(affine, dtype=np.float64).tobytes())
    digest.update(repr((__version__, FORMAT, array.shape, *parts)).encode())
    return digest.hexdigest()
