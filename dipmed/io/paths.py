"""Output safety: never over the input, never over an existing output unless asked,
and written atomically (a hidden temporary name beside the target, then a rename)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dipmed.errors import InputError


def check_output(input_path: Path | None, output_path: Path, *, overwrite: bool) -> None:
    """Refuse an output that is, holds or lies inside the input (None: no input file, an
    array from the Python API), or that exists."""
    if input_path is not None:
        src, dst = input_path.resolve(), output_path.resolve()
        if src == dst:
            raise InputError(
                f"output {output_path} is the input itself; choose another output path"
            )
        if src in dst.parents or dst in src.parents:
            raise InputError(
                f"output {output_path} would nest with input {input_path}; "
                "choose an output outside the input"
            )
    if output_path.exists() or output_path.is_symlink():
        if not overwrite:
            raise InputError(f"output {output_path} exists; pass --overwrite to replace it")


@contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success move it into place.

    The temporary name keeps `final`'s suffixes (nibabel picks the format from them).
    On any failure the temporary file or folder is removed and `final` is untouched.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".partial-{os.getpid()}-{final.name}"
    _remove(tmp)
    try:
        yield tmp
        _replace(tmp, final)
    finally:
        _remove(tmp)


def _replace(tmp: Path, final: Path) -> None:
    exists = final.exists() or final.is_symlink()
    if not exists or not (tmp.is_dir() or final.is_dir()):
        os.replace(tmp, final)  # atomic, also over an existing file
        return
    # A folder cannot be renamed over a non-empty one: move the old one aside first.
    trash = final.parent / f".trash-{os.getpid()}-{final.name}"
    os.replace(final, trash)
    os.replace(tmp, final)
    _remove(trash)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
