"""dipmed's Python API: restore a NumPy array or a Volume in a notebook or a script.

Each call runs the same restoration as the command line on the same input and seed (the
CLI is these calls plus file handling, reports and checkpoints). Settings: any key of
the YAML config as a keyword, with `__` for the dot (`guided__patch=48`), plus the
command line's shortcuts `quality`, `member_steps` and `max_iters`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from dipmed.config import RestoreConfig, load_config
from dipmed.errors import InputError
from dipmed.io import read_volume, write_volume
from dipmed.restoration.restore import Task, restore
from dipmed.volume import Meta, Volume

_SHORTCUTS = {
    "quality": "guided.quality",
    "member_steps": "guided.iterations",
    "max_iters": "fit.max_iters",
}


def denoise(
    image: np.ndarray | Volume,
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    modality: str = "unknown",
    config: RestoreConfig | str | Path | None = None,
    progress: Callable | None = None,
    **settings,
) -> np.ndarray | Volume:
    """Denoise a 3D scan (guided denoising by default; `method="dip"` for DIP alone).

    Args:
        image: a 3D array indexed (X, Y, Z), or a `Volume` (its geometry and meta kept).
        spacing: voxel size in mm along X, Y, Z (arrays only).
        modality: "MR" (magnitude data: Rician noise, the level read from air), "CT"
            (Gaussian noise, HU) or "unknown" (arrays only; a Volume carries its own).
        config: a `RestoreConfig`, or the path of a YAML config file; None: the defaults.
        progress: called with each stage and fit step (`restoration.runtime.events`).
        **settings: config keys (`seed=1`, `quality="fast"`, `noise_sigma=20.0`, ...).

    Returns:
        The denoised scan, float32: an array of the input's shape for an array, a
        `Volume` on the input's grid for a `Volume`.

    Example:
        >>> import numpy as np, dipmed
        >>> clean = np.zeros((32, 32, 24), np.float32); clean[8:24, 8:24, 6:18] = 100
        >>> noisy = clean + np.random.default_rng(0).normal(0, 10, clean.shape)
        >>> denoised = dipmed.denoise(noisy, modality="CT", quality="fast")
        >>> denoised.shape, bool(np.abs(denoised - clean).mean() < np.abs(noisy - clean).mean())
        ((32, 32, 24), True)
    """
    return _restore(image, Task("denoise"), spacing, modality, config, progress, settings)


def super_resolve(
    image: np.ndarray | Volume,
    factors: tuple[int, int, int],
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    modality: str = "unknown",
    config: RestoreConfig | str | Path | None = None,
    progress: Callable | None = None,
    **settings,
) -> np.ndarray | Volume:
    """Super-resolve thick slices: the output grid is finer by `factors` per axis.

    Args:
        image: a 3D array indexed (X, Y, Z), or a `Volume`.
        factors: the output's voxels per input voxel along X, Y, Z, e.g. (1, 1, 4).
        spacing: the input's voxel size in mm (arrays only), e.g. (1, 1, 4).
        modality, config, progress, settings: as for `denoise` (`sr_method="internal"`
            or `"dip"` picks the method; default: by the output's size).

    Returns:
        The super-resolved scan, float32, of shape input shape x factors (a `Volume`,
        its affine refined to the finer grid, for a `Volume`).

    Example:
        >>> import numpy as np, dipmed
        >>> thick = np.random.default_rng(0).normal(50, 1, (32, 32, 16)).astype(np.float32)
        >>> fine = dipmed.super_resolve(thick, (1, 1, 2), spacing=(1, 1, 2), max_iters=2)
        >>> fine.shape
        (32, 32, 32)
    """
    task = Task("sr", factors=tuple(int(f) for f in factors))
    return _restore(image, task, spacing, modality, config, progress, settings)


def inpaint(
    image: np.ndarray | Volume,
    known: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    modality: str = "unknown",
    config: RestoreConfig | str | Path | None = None,
    progress: Callable | None = None,
    **settings,
) -> np.ndarray | Volume:
    """Fill the voxels where `known` is 0 from the rest of the scan (the DIP fit).

    Args:
        image: a 3D array indexed (X, Y, Z), or a `Volume`.
        known: an array of the image's shape, nonzero where the voxels are measured.
        spacing, modality, config, progress, settings: as for `denoise`.

    Returns:
        The inpainted scan, float32, on the input's grid.

    Example:
        >>> import numpy as np, dipmed
        >>> image = np.full((32, 32, 32), 10.0, np.float32); known = np.ones_like(image)
        >>> known[14:18, 14:18, 14:18] = 0
        >>> dipmed.inpaint(image * known, known, max_iters=2).shape
        (32, 32, 32)
    """
    known = np.asarray(known)
    if known.shape != np.shape(image.array if isinstance(image, Volume) else image):
        raise InputError(
            f"known has shape {known.shape}, not the image's; give one mask value per voxel"
        )
    task = Task("inpaint", mask=known > 0)
    return _restore(image, task, spacing, modality, config, progress, settings)


def read(path: str | Path, *, series: str | None = None, volume: int | None = None) -> Volume:
    """Read a NIfTI file, a DICOM series folder or a multi-frame DICOM file as a `Volume`.

    Args:
        path: the file or folder.
        series: a DICOM folder holding several series: which one (its number or UID).
        volume: a 4D input: which volume (0-based).

    Returns:
        The scan: `.array` (float32, X Y Z), `.affine` (voxel to RAS+ mm), `.meta`.
    """
    return read_volume(Path(path), series=series, volume=volume)


def write(
    volume: Volume, path: str | Path, *, source: str | Path | None = None, overwrite: bool = False
) -> None:
    """Write a `Volume` atomically: NIfTI (with a JSON sidecar) or, for a volume read
    from DICOM, a derived DICOM series (a folder path).

    Args:
        volume: the scan, e.g. the result of `denoise(read(path))`.
        path: .nii or .nii.gz, or a folder for a DICOM series.
        source: the path the volume was read from: never written over.
        overwrite: replace an existing output.
    """
    path = Path(path)
    write_volume(
        volume,
        path,
        input_path=Path(source) if source is not None else None,
        overwrite=overwrite,
        derivation="dipmed (Python API)",
    )


def _restore(image, task, spacing, modality, config, progress, settings):
    volume = image if isinstance(image, Volume) else _volume(image, spacing, modality)
    result = restore(volume, task, _config(config, settings), progress=progress)
    return result.volume if isinstance(image, Volume) else result.volume.array


def _volume(array, spacing, modality: str) -> Volume:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3:
        raise InputError(f"a 3D array is needed, got shape {array.shape}")
    affine = np.diag([*map(float, spacing), 1.0])
    return Volume(array, affine, Meta(modality=modality, units="HU" if modality == "CT" else ""))


def _config(config, settings: dict) -> RestoreConfig:
    keys = {_SHORTCUTS.get(k, k.replace("__", ".")): v for k, v in settings.items()}
    if isinstance(config, RestoreConfig):
        return load_config(None, **{**_flat(asdict(config)), **keys})
    return load_config(None if config is None else Path(config), **keys)


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out
