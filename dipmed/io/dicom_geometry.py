"""DICOM slice geometry: stacking 2D slices into a (X, Y, Z) grid with an RAS affine.

Conventions: X follows DICOM columns (along a row, direction IOP[0:3]), Y follows rows
(IOP[3:6]), Z the slices sorted along the slice normal. DICOM patient space is LPS;
the affine is returned in RAS by flipping the first two world axes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dipmed.errors import InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_ORIENTATION_TOL = 1e-4  # direction-cosine difference still taken as the same orientation
_GAP_TOL_MM, _GAP_TOL_REL = 0.01, 0.01  # slice gaps differing by more are uneven


@dataclass(frozen=True)
class Slice:
    """One 2D image plane and how to get its intensities."""

    position: np.ndarray  # ImagePositionPatient, LPS mm
    orientation: np.ndarray  # ImageOrientationPatient, 6 direction cosines
    spacing: tuple[float, float]  # PixelSpacing: (between rows, between columns) mm
    shape: tuple[int, int]  # (Rows, Columns)
    slope: float
    intercept: float
    pixels: Callable[[], np.ndarray]  # stored values, shape (Rows, Columns)


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    return np.cross(orientation[:3], orientation[3:])


def slice_order(slices: list[Slice], source: Path) -> list[int]:
    """Indices sorting the slices along their normal, once checked to form a regular stack."""
    first = slices[0]
    for item in slices[1:]:
        if item.shape != first.shape or not np.allclose(item.spacing, first.spacing, atol=1e-4):
            raise InputError(
                f"{source}: slices differ in size or pixel spacing; the series "
                "mixes images of different grids: export one stack only"
            )
        if not np.allclose(item.orientation, first.orientation, atol=_ORIENTATION_TOL):
            raise InputError(
                f"{source}: slices differ in orientation (a localizer or several "
                "stacks in one series); export one stack only"
            )
    normal = slice_normal(first.orientation)
    distances = np.array([float(s.position @ normal) for s in slices])
    order = [int(i) for i in np.argsort(distances, kind="stable")]
    _check_gaps(distances[order], source)
    return order


def _check_gaps(distances: np.ndarray, source: Path) -> None:
    if len(distances) < 2:
        return
    gaps = np.diff(distances)
    if np.any(gaps < _GAP_TOL_MM):
        count = int(np.sum(gaps < _GAP_TOL_MM)) + 1
        raise InputError(
            f"{source}: {count} slices share one position (several echoes, phases "
            "or acquisitions in one series); split the series first"
        )
    step = float(np.median(gaps))
    worst = int(np.argmax(np.abs(gaps - step)))
    if abs(gaps[worst] - step) > _GAP_TOL_MM + _GAP_TOL_REL * step:
        raise InputError(
            f"{source}: uneven slice spacing: gap of {gaps[worst]:.3f} mm between slices "
            f"{worst + 1} and {worst + 2} where the others are {step:.3f} mm (a missing "
            "slice?); export the complete series or resample it to a regular grid first"
        )


def stack_affine(ordered: list[Slice], default_step_mm: float) -> np.ndarray:
    """The RAS affine of sorted slices (slice step from first to last position)."""
    first = ordered[0]
    row_dir, col_dir = first.orientation[:3], first.orientation[3:]
    lps = np.eye(4)
    lps[:3, 0] = row_dir * first.spacing[1]
    lps[:3, 1] = col_dir * first.spacing[0]
    if len(ordered) > 1:
        lps[:3, 2] = (ordered[-1].position - first.position) / (len(ordered) - 1)
    else:
        lps[:3, 2] = slice_normal(first.orientation) * default_step_mm
    lps[:3, 3] = first.position
    return LPS_TO_RAS @ lps


def stack_pixels(ordered: list[Slice]) -> np.ndarray:
    """Rescaled float32 intensities indexed (X, Y, Z) = (column, row, slice)."""
    rows, cols = ordered[0].shape
    array = np.empty((cols, rows, len(ordered)), dtype=np.float32)
    for k, item in enumerate(ordered):
        stored = np.asarray(item.pixels(), dtype=np.float64)
        array[:, :, k] = (stored * item.slope + item.intercept).T
    return array


def slice_planes(affine_ras: np.ndarray, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ImagePositionPatient, ImageOrientationPatient) in LPS for each slice of a grid."""
    lps = LPS_TO_RAS @ affine_ras
    row_dir = lps[:3, 0] / np.linalg.norm(lps[:3, 0])
    col_dir = lps[:3, 1] / np.linalg.norm(lps[:3, 1])
    orientation = np.concatenate([row_dir, col_dir])
    return [(lps[:3, 2] * k + lps[:3, 3], orientation) for k in range(count)]
