"""Tri-planar views as PNG: each volume cut through one world point in axial, coronal and
sagittal planes, shown in radiological convention (patient's right on the viewer's
left, anterior and superior up), voxels drawn to scale in millimetres."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from PIL import Image

from dipmed.volume import Volume, spacing_of

GAP_PX = 6  # black gap between the three planes of a row
CT_WINDOWS = (("brain", 40.0, 80.0), ("soft tissue", 40.0, 400.0), ("bone", 600.0, 2800.0))
MR_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Window:
    """Display range: values <= low are black, >= high white."""

    name: str
    low: float
    high: float

    @classmethod
    def centred(cls, name: str, level: float, width: float) -> Window:
        return cls(name, level - width / 2, level + width / 2)

    def label(self, units: str) -> str:
        unit = f" {units}" if units else ""
        return f"{self.name}: {self.low:.4g} to {self.high:.4g}{unit}"


def windows_for(array: np.ndarray, units: str) -> list[Window]:
    """CT (HU): brain, soft tissue and bone windows; otherwise robust percentiles."""
    if units == "HU":
        return [Window.centred(name, level, width) for name, level, width in CT_WINDOWS]
    low, high = (float(v) for v in np.percentile(array, MR_PERCENTILES))
    return [
        Window(f"percentiles {MR_PERCENTILES[0]}-{MR_PERCENTILES[1]}", low, max(high, low + 1e-6))
    ]


def symmetric_window(name: str, array: np.ndarray, sigma: float) -> Window:
    """For residuals and errors: +-max(3 sigma, 99th percentile of |value|), zero grey."""
    half = max(3 * sigma, float(np.percentile(np.abs(array), 99)), 1e-6)
    return Window(name, -half, half)


def triplanar_png(
    array: np.ndarray, affine: np.ndarray, centre_mm: np.ndarray, window: Window, px_per_mm: float
) -> bytes:
    """One PNG with the axial, coronal and sagittal planes through `centre_mm` (RAS)."""
    data, spacing, index = _canonical(array, affine, centre_mm)
    i, j, k = index
    planes = [
        (data[::-1, ::-1, k].T, (spacing[1], spacing[0])),  # axial: rows A->P, cols R->L
        (data[::-1, j, ::-1].T, (spacing[2], spacing[0])),  # coronal: rows S->I, cols R->L
        (data[i, ::-1, ::-1].T, (spacing[2], spacing[1])),  # sagittal: rows S->I, cols A->P
    ]
    images = [_to_scale(_grey(p, window), s, px_per_mm) for p, s in planes]
    return _png(_side_by_side(images))


def px_per_mm_for(volume: Volume, target_px: int = 150) -> float:
    """Scale at which the volume's largest extent is about `target_px` pixels."""
    return target_px / float(np.max(np.asarray(volume.shape) * volume.spacing))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _canonical(array, affine, centre_mm):
    """The array in RAS axis order, its spacing, and the voxel nearest `centre_mm`."""
    ornt = nib.orientations.io_orientation(affine)
    to_ras = nib.orientations.ornt_transform(ornt, nib.orientations.axcodes2ornt("RAS"))
    data = nib.orientations.apply_orientation(array, to_ras)
    new_affine = affine @ nib.orientations.inv_ornt_aff(to_ras, array.shape)
    spacing = spacing_of(new_affine)
    voxel = np.linalg.solve(new_affine, np.append(centre_mm, 1.0))[:3]
    index = np.clip(np.round(voxel).astype(int), 0, np.asarray(data.shape) - 1)
    return data, spacing, index


def _grey(plane: np.ndarray, window: Window) -> np.ndarray:
    scaled = (plane.astype(np.float64) - window.low) / (window.high - window.low)
    return (np.clip(scaled, 0, 1) * 255 + 0.5).astype(np.uint8)


def _to_scale(image: np.ndarray, spacing_rc: tuple[float, float], px_per_mm: float):
    """Nearest-neighbour resampling so that one pixel is 1/px_per_mm mm both ways."""
    rows = max(1, round(image.shape[0] * spacing_rc[0] * px_per_mm))
    cols = max(1, round(image.shape[1] * spacing_rc[1] * px_per_mm))
    r = ((np.arange(rows) + 0.5) * image.shape[0] / rows).astype(int)
    c = ((np.arange(cols) + 0.5) * image.shape[1] / cols).astype(int)
    return image[np.ix_(r, c)]


def _side_by_side(images: list[np.ndarray]) -> np.ndarray:
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + GAP_PX * (len(images) - 1)
    canvas = np.zeros((height, width), np.uint8)
    col = 0
    for im in images:
        top = (height - im.shape[0]) // 2
        canvas[top : top + im.shape[0], col : col + im.shape[1]] = im
        col += im.shape[1] + GAP_PX
    return canvas


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
