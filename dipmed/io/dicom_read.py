"""Reading one DICOM series (classic slices, a multi-frame file, Siemens mosaic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from dipmed.errors import InputError
from dipmed.io import dicom_geometry as geo
from dipmed.io.dicom_frames import frame_count, frame_volumes, read_frames
from dipmed.io.dicom_mosaic import mosaic_files, mosaic_volumes, unpack_mosaic
from dipmed.io.dicom_pixels import decode_pixels
from dipmed.io.dicom_scan import Series
from dipmed.io.nifti import check_voxel_count
from dipmed.io.volumes import pick_volume
from dipmed.volume import Meta, Volume


@dataclass(frozen=True, eq=False)
class DicomSource:
    """What the derived-series writer reuses: one header per source slice, in Z order.

    For multi-frame and mosaic sources there is one header for the whole stack and
    `classic` is False: the writer then builds classic slices from it.
    """

    headers: tuple[Dataset, ...]
    positions: np.ndarray  # (n, 3) LPS ImagePositionPatient of each header's slice
    classic: bool


def stack_kind(header: Dataset) -> str:
    """How a file holds its slices: "multiframe", Siemens "mosaic" or "classic" (one slice)."""
    if "PerFrameFunctionalGroupsSequence" in header or frame_count(header) > 1:
        return "multiframe"
    if "MOSAIC" in [str(v).upper() for v in header.get("ImageType", [])]:
        return "mosaic"
    return "classic"


def read_series(series: Series, *, volume_index: int | None = None) -> Volume:
    """The series as a Volume; its kind is decided from the first header."""
    kind = stack_kind(series.headers[0])
    if kind == "multiframe":
        return _read_multiframe(series, volume_index)
    if kind == "mosaic":
        return _read_mosaic(series, volume_index)
    if volume_index is not None:
        raise InputError(
            "--volume applies to 4D NIfTI, mosaic series and multi-volume multi-frame "
            "files; drop it"
        )
    return _read_classic(series)


def series_volumes(series: Series) -> list[dict]:
    """What tells apart the volumes of a multi-volume series; [] when it holds one."""
    kind = stack_kind(series.headers[0])
    if kind == "multiframe":
        return frame_volumes(series.headers[0], _single_file(series))
    if kind == "mosaic":
        return mosaic_volumes(series)
    return []


def _read_classic(series: Series) -> Volume:
    slices = [_classic_slice(h, p) for h, p in zip(series.headers, series.files, strict=True)]
    source_dir = series.files[0].parent
    order = geo.slice_order(slices, source_dir)
    check_voxel_count(source_dir, slices[0].shape + (len(slices),))
    ordered = [slices[i] for i in order]
    headers = tuple(series.headers[i] for i in order)
    source = DicomSource(headers, np.array([s.position for s in ordered]), classic=True)
    first = headers[0]
    step = float(first.get("SpacingBetweenSlices", 0) or first.get("SliceThickness", 0) or 1)
    return _volume(ordered, first, source, step)


def _classic_slice(header: Dataset, path: Path) -> geo.Slice:
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if keyword not in header:
            raise InputError(
                f"{path} lacks {keyword}, so its geometry is unknown; "
                "export the series with its image plane attributes"
            )
    return geo.Slice(
        position=np.array(header.ImagePositionPatient, dtype=float),
        orientation=np.array(header.ImageOrientationPatient, dtype=float),
        spacing=tuple(float(v) for v in header.PixelSpacing),
        shape=(int(header.Rows), int(header.Columns)),
        slope=float(header.get("RescaleSlope", 1) or 1),
        intercept=float(header.get("RescaleIntercept", 0) or 0),
        pixels=lambda: decode_pixels(header, path),
    )


def _read_multiframe(series: Series, volume_index: int | None) -> Volume:
    dataset, path = series.headers[0], _single_file(series)
    stack = read_frames(dataset, path, volume_index)
    source = DicomSource((dataset,), np.array([stack.slices[0].position]), classic=False)
    return _volume(stack.slices, dataset, source, stack.step_mm, stack.warnings)


def _read_mosaic(series: Series, volume_index: int | None) -> Volume:
    files = mosaic_files(series)
    folder = series.files[0].parent
    header, path = files[pick_volume(len(files), volume_index, folder, "is a mosaic series of")]
    array, affine, position = unpack_mosaic(header, path)
    source = DicomSource((header,), np.array([position]), classic=False)
    return Volume(array, affine, _meta(header), source)


def _single_file(series: Series) -> Path:
    if len(series.files) != 1:
        raise InputError(
            f"{series.files[0].parent} holds {len(series.files)} files of a multi-frame "
            "series; pass one file instead of the folder"
        )
    return series.files[0]


def _volume(
    ordered: list[geo.Slice],
    header: Dataset,
    source: DicomSource,
    step_mm: float,
    warnings: tuple[str, ...] = (),
) -> Volume:
    affine = geo.stack_affine(ordered, step_mm)
    return Volume(geo.stack_pixels(ordered), affine, _meta(header, warnings), source)


def _meta(header: Dataset, warnings: tuple[str, ...] = ()) -> Meta:
    modality = str(header.get("Modality", "") or "unknown")
    return Meta(
        modality=modality,
        units="HU" if modality == "CT" else "",
        source_format="dicom",
        series_description=str(header.get("SeriesDescription", "") or ""),
        series_uid=str(header.get("SeriesInstanceUID", "") or ""),
        study_uid=str(header.get("StudyInstanceUID", "") or ""),
        frame_of_reference_uid=str(header.get("FrameOfReferenceUID", "") or ""),
        warnings=warnings,
    )
