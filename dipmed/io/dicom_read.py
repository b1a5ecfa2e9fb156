"""Reading one DICOM series (classic slices, enhanced multi-frame, Siemens mosaic)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from dipmed.errors import InputError
from dipmed.io import dicom_geometry as geo
from dipmed.io.dicom_pixels import decode_pixels
from dipmed.io.dicom_scan import Series
from dipmed.io.nifti import check_voxel_count
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
    """How a file holds its slices: "enhanced" multi-frame, Siemens "mosaic" or "classic"."""
    if "PerFrameFunctionalGroupsSequence" in header:
        return "enhanced"
    if "MOSAIC" in [str(v).upper() for v in header.get("ImageType", [])]:
        return "mosaic"
    return "classic"


def read_series(series: Series, *, volume_index: int | None = None) -> Volume:
    """The series as a Volume; its kind is decided from the first header."""
    first = series.headers[0]
    kind = stack_kind(first)
    if kind == "enhanced":
        return _read_enhanced(first, _single_file(series, "an enhanced multi-frame"))
    if kind == "mosaic":
        return _read_mosaic(series, volume_index)
    if volume_index is not None:
        raise InputError("--volume applies to 4D NIfTI and Siemens mosaic series; drop it")
    return _read_classic(series)


def _read_classic(series: Series) -> Volume:
    if int(series.headers[0].get("NumberOfFrames", 1) or 1) > 1:
        raise InputError(
            f"{series.files[0]} is a multi-frame image without functional groups; "
            "convert it to single-frame slices first"
        )
    slices = [_classic_slice(h, p) for h, p in zip(series.headers, series.files, strict=True)]
    source_dir = series.files[0].parent
    order = geo.slice_order(slices, source_dir)
    check_voxel_count(source_dir, slices[0].shape + (len(slices),))
    ordered = [slices[i] for i in order]
    headers = tuple(series.headers[i] for i in order)
    source = DicomSource(headers, np.array([s.position for s in ordered]), classic=True)
    return _volume(ordered, headers[0], source)


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


def _read_enhanced(dataset: Dataset, path: Path) -> Volume:
    frames_count = int(dataset.get("NumberOfFrames", 1))
    check_voxel_count(path, (int(dataset.Rows), int(dataset.Columns), frames_count))
    frames = _frames(dataset, path, frames_count)
    slices = [_frame_slice(dataset, i, frames, path) for i in range(frames_count)]
    ordered = [slices[i] for i in geo.slice_order(slices, path)]
    source = DicomSource((dataset,), np.array([ordered[0].position]), classic=False)
    return _volume(ordered, dataset, source)


def _frames(dataset: Dataset, path: Path, count: int) -> np.ndarray:
    pixels = decode_pixels(dataset, path)
    return pixels.reshape((count,) + pixels.shape[-2:])


def _frame_slice(dataset: Dataset, index: int, frames: np.ndarray, path: Path) -> geo.Slice:
    def attribute(sequence: str, keyword: str, default=None):
        for groups in (
            dataset.PerFrameFunctionalGroupsSequence[index],
            dataset.get("SharedFunctionalGroupsSequence", [Dataset()])[0],
        ):
            if sequence in groups and keyword in groups[sequence][0]:
                return groups[sequence][0][keyword].value
        if default is None:
            raise InputError(
                f"{path}: frame {index + 1} lacks {sequence}/{keyword}; "
                "the multi-frame geometry is incomplete"
            )
        return default

    return geo.Slice(
        position=np.array(attribute("PlanePositionSequence", "ImagePositionPatient"), float),
        orientation=np.array(
            attribute("PlaneOrientationSequence", "ImageOrientationPatient"), float
        ),
        spacing=tuple(float(v) for v in attribute("PixelMeasuresSequence", "PixelSpacing")),
        shape=frames.shape[1:],
        slope=float(attribute("PixelValueTransformationSequence", "RescaleSlope", 1.0)),
        intercept=float(attribute("PixelValueTransformationSequence", "RescaleIntercept", 0.0)),
        pixels=lambda: frames[index],
    )


def _read_mosaic(series: Series, volume_index: int | None) -> Volume:
    with warnings.catch_warnings():  # nibabel warns that its DICOM readers are experimental
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

    count = len(series.files)
    if volume_index is None and count > 1:
        raise InputError(
            f"{series.files[0].parent} is a mosaic series of {count} volumes; "
            f"choose one with --volume 0..{count - 1}"
        )
    index = volume_index or 0
    if not 0 <= index < count:
        raise InputError(f"--volume {index} is out of range; the series has volumes 0..{count - 1}")
    ordered = sorted(
        zip(series.headers, series.files, strict=True),
        key=lambda pair: int(pair[0].get("InstanceNumber", 0) or 0),
    )
    header, path = ordered[index]
    decode_pixels(header, path)  # clear message when the pixel data cannot be decoded
    try:
        wrapper = dicomwrappers.wrapper_from_data(header)
        data, lps = wrapper.get_data(), wrapper.affine  # (rows, cols, slices), row index first
    except Exception as error:
        raise InputError(
            f"{path}: Siemens mosaic cannot be unpacked ({error}); convert it with dcm2niix first"
        ) from None
    affine = geo.LPS_TO_RAS @ lps[:, [1, 0, 2, 3]]
    source = DicomSource((header,), np.array([lps[:3, 3]]), classic=False)
    array = np.ascontiguousarray(np.transpose(data, (1, 0, 2)), dtype=np.float32)
    return Volume(array, affine, _meta(header), source)


def _single_file(series: Series, kind: str) -> Path:
    if len(series.files) != 1:
        raise InputError(
            f"{series.files[0].parent} holds {len(series.files)} files of {kind} "
            "series; pass one file instead of the folder"
        )
    return series.files[0]


def _volume(ordered: list[geo.Slice], header: Dataset, source: DicomSource) -> Volume:
    step = float(header.get("SpacingBetweenSlices", 0) or header.get("SliceThickness", 0) or 1)
    return Volume(geo.stack_pixels(ordered), geo.stack_affine(ordered, step), _meta(header), source)


def _meta(header: Dataset) -> Meta:
    modality = str(header.get("Modality", "") or "unknown")
    return Meta(
        modality=modality,
        units="HU" if modality == "CT" else "",
        source_format="dicom",
        series_description=str(header.get("SeriesDescription", "") or ""),
        series_uid=str(header.get("SeriesInstanceUID", "") or ""),
        study_uid=str(header.get("StudyInstanceUID", "") or ""),
        frame_of_reference_uid=str(header.get("FrameOfReferenceUID", "") or ""),
    )
