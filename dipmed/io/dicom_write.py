"""Writing a volume as a classic single-frame DICOM series.

A derived series copies, for each output slice, the header of the nearest source slice:
Patient, Study and Frame of Reference stay; the series and every instance get new,
reproducible UIDs; ImageType becomes DERIVED\\SECONDARY; SourceImageSequence names the
source slice. Pixels are int16 with one slope/intercept for the whole series. The output
grid may differ from the source grid (super-resolution): positions, spacing and slice
count then follow the volume's affine.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

from dipmed.errors import InputError
from dipmed.io import dicom_geometry as geo
from dipmed.io.dicom_read import DicomSource
from dipmed.io.dicom_template import classic_template
from dipmed.io.encoding import int16_scaling, to_int16
from dipmed.volume import Volume

# Attributes that describe the old stored pixel values and would be wrong after rewriting.
_STALE = (
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "IconImageSequence",
    "ModalityLUTSequence",
    "VOILUTSequence",
    "NumberOfFrames",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "PlanarConfiguration",
    "SliceLocation",
)


@dataclass(frozen=True)
class SeriesPlan:
    """Everything shared by the slices of one output series."""

    series_uid: str
    series_number: int
    description: str
    derivation: str | None  # None for an original (new) series
    slope: float
    intercept: float
    step_changed: bool  # True when the slice spacing differs from the source's


def write_derived_series(
    volume: Volume, folder: Path, *, label: str, derivation: str, number_offset: int = 1000
) -> None:
    """Write `volume` as a DERIVED series beside its DICOM source (new folder `folder`),
    numbered the source's series number + `number_offset`."""
    source = volume.source
    if not isinstance(source, DicomSource):
        raise InputError(
            "DICOM output needs DICOM input; write NIfTI instead "
            "(an output path ending .nii or .nii.gz)"
        )
    first = source.headers[0]
    slope, intercept = int16_scaling(volume.array)
    plan = SeriesPlan(
        series_uid=_series_uid(first, derivation, volume),
        series_number=_series_number(first) + number_offset,
        description=f"{first.get('SeriesDescription', '') or ''} {label}".strip()[:64],
        derivation=derivation[:1024],
        slope=slope,
        intercept=intercept,
        step_changed=not np.isclose(_source_step(source), volume.spacing[2], atol=1e-3),
    )
    modality = str(first.get("Modality", "") or volume.meta.modality)
    fallback = None if source.classic else classic_template(modality, copy_from=first)
    _write(volume, folder, plan, lambda ipp, normal: _nearest(source, ipp, normal, fallback))


def write_new_series(
    volume: Volume, folder: Path, *, template: Dataset, rescale: tuple[float, float] | None = None
) -> None:
    """Write `volume` as an ORIGINAL series from `template` (see `classic_template`)."""
    slope, intercept = rescale or int16_scaling(volume.array)
    plan = SeriesPlan(
        series_uid=str(template.SeriesInstanceUID),
        series_number=_series_number(template),
        description=str(template.get("SeriesDescription", "")),
        derivation=None,
        slope=slope,
        intercept=intercept,
        step_changed=True,
    )
    _write(volume, folder, plan, lambda ipp, normal: (template, None))


def _write(
    volume: Volume,
    folder: Path,
    plan: SeriesPlan,
    pick: Callable[[np.ndarray, np.ndarray], tuple[Dataset, Dataset | None]],
) -> None:
    stored = to_int16(volume.array, plan.slope, plan.intercept)
    folder.mkdir(parents=True)
    for k, (ipp, iop) in enumerate(geo.slice_planes(volume.affine, volume.shape[2])):
        template, referenced = pick(ipp, geo.slice_normal(iop))
        ds = _slice(template, referenced, plan, k, stored[:, :, k].T, (ipp, iop), volume)
        ds.save_as(folder / f"IM{k + 1:05d}.dcm", enforce_file_format=True)


def _slice(
    template: Dataset,
    referenced: Dataset | None,
    plan: SeriesPlan,
    k: int,
    pixels: np.ndarray,
    plane: tuple[np.ndarray, np.ndarray],
    volume: Volume,
) -> Dataset:
    ds = copy.deepcopy(template)
    for keyword in _STALE:
        ds.pop(keyword, None)
    ipp, iop = plane
    ds.SeriesInstanceUID, ds.SeriesNumber = plan.series_uid, plan.series_number
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[plan.series_uid, str(k)])
    ds.InstanceNumber = k + 1
    if plan.description:
        ds.SeriesDescription = plan.description
    ds.ImagePositionPatient = [_ds(v) for v in ipp]
    ds.ImageOrientationPatient = [_ds(v) for v in iop]
    ds.PixelSpacing = [_ds(volume.spacing[1]), _ds(volume.spacing[0])]
    ds.SliceLocation = _ds(float(ipp @ geo.slice_normal(iop)))
    if plan.step_changed or not ds.get("SliceThickness"):
        ds.SliceThickness = _ds(volume.spacing[2])
    if "SpacingBetweenSlices" in ds:
        ds.SpacingBetweenSlices = _ds(volume.spacing[2])
    if plan.derivation is not None:
        _mark_derived(ds, referenced, plan.derivation)
    _set_pixels(ds, pixels, plan)
    return ds


def _mark_derived(ds: Dataset, referenced: Dataset | None, derivation: str) -> None:
    values = [str(v) for v in ds.get("ImageType", [])][2:]
    if ds.get("Modality") == "CT" and not values:
        values = ["AXIAL"]
    ds.ImageType = ["DERIVED", "SECONDARY", *values]
    ds.DerivationDescription = derivation
    if referenced is not None:
        item = Dataset()
        item.ReferencedSOPClassUID = referenced.SOPClassUID
        item.ReferencedSOPInstanceUID = referenced.SOPInstanceUID
        ds.SourceImageSequence = Sequence([item])


def _set_pixels(ds: Dataset, pixels: np.ndarray, plan: SeriesPlan) -> None:
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = _ds(plan.slope), _ds(plan.intercept)
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    ds["PixelData"].VR = "OW"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta


def _nearest(
    source: DicomSource, ipp: np.ndarray, normal: np.ndarray, fallback: Dataset | None
) -> tuple[Dataset, Dataset]:
    """The source header whose slice lies nearest the output plane, and the one to reference."""
    index = int(np.argmin(np.abs((source.positions - ipp) @ normal)))
    header = source.headers[index]
    return (fallback if fallback is not None else header), header


def _series_uid(first: Dataset, derivation: str, volume: Volume) -> str:
    """Stable across reruns: the same source, derivation and grid give the same UID."""
    grid = f"{volume.shape}{volume.affine.round(4).tolist()}"
    return generate_uid(entropy_srcs=[str(first.SeriesInstanceUID), derivation, grid])


def _source_step(source: DicomSource) -> float:
    if len(source.positions) < 2:
        return float("nan")
    return float(np.linalg.norm(source.positions[1] - source.positions[0]))


def _series_number(header: Dataset) -> int:
    try:
        return int(header.get("SeriesNumber", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _ds(value: float) -> DSfloat:
    """A decimal string of at most 16 characters, as DICOM requires."""
    return DSfloat(float(value), auto_format=True)
