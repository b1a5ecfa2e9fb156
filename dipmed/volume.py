"""The volume model: a float32 array (X, Y, Z), a 4x4 RAS affine, and metadata.

Spacing and orientation are derived from the affine, never stored beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import nibabel as nib
import numpy as np


@dataclass(frozen=True)
class Meta:
    """What is known about a volume beyond its voxels. Holds no patient identifiers."""

    modality: str = "unknown"  # DICOM modality code: "CT", "MR", ... or "unknown"
    units: str = ""  # intensity units: "HU" for CT, "" when arbitrary
    source_format: str = ""  # "nifti" | "dicom"
    series_description: str = ""
    series_uid: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    warnings: tuple[str, ...] = ()  # what the reader had to assume (e.g. missing geometry)


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scan.

    Attributes:
        array: float32 intensities indexed (X, Y, Z) = (i, j, k).
        affine: 4x4 map from voxel index (i, j, k, 1) to RAS+ world millimetres.
        meta: modality, units and identifiers of the series (no patient data).
        source: the reader's handle (NIfTI header or DICOM headers) that writers reuse.
    """

    array: np.ndarray
    affine: np.ndarray
    meta: Meta = field(default_factory=Meta)
    source: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume array must be 3D, got shape {self.array.shape}")
        object.__setattr__(self, "array", np.asarray(self.array, dtype=np.float32))
        object.__setattr__(self, "affine", np.asarray(self.affine, dtype=np.float64))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis (norms of the affine's columns)."""
        return tuple(float(s) for s in spacing_of(self.affine))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        """Axis codes such as "RAS": where each array axis points in world space."""
        return "".join(nib.orientations.aff2axcodes(self.affine))

    def with_array(self, array: np.ndarray, affine: np.ndarray | None = None) -> Volume:
        """The same scan with new voxels (and, for a new grid, a new affine)."""
        return replace(self, array=array, affine=self.affine if affine is None else affine)


def spacing_of(affine: np.ndarray) -> np.ndarray:
    """Voxel size in mm along each array axis of a 4x4 affine (its columns' norms)."""
    return np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)


def world_centre(volume: Volume) -> np.ndarray:
    """RAS position (mm) of the centre of the volume's field of view."""
    centre_index = (np.array(volume.shape) - 1) / 2.0
    return volume.affine[:3, :3] @ centre_index + volume.affine[:3, 3]


def refine_affine(affine: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Affine of a grid `factors` times finer over the same physical extent.

    Thick voxel j covers thin voxels j*f .. j*f + f - 1, centred within it: thin index i
    sits at thick index (i + 0.5) / f - 0.5. One thick slice becomes f thin slices.
    """
    f = np.asarray(factors, dtype=np.float64)
    to_thick = np.eye(4)
    to_thick[:3, :3] = np.diag(1.0 / f)
    to_thick[:3, 3] = 0.5 / f - 0.5
    return affine @ to_thick


def coarsen_affine(affine: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """The inverse of `refine_affine`: the grid of blocks of `factors` voxels."""
    f = np.asarray(factors, dtype=np.float64)
    to_thin = np.eye(4)
    to_thin[:3, :3] = np.diag(f)
    to_thin[:3, 3] = (f - 1) / 2
    return affine @ to_thin
