"""Test-only builders for DICOM forms dipmed reads but does not write (multi-frame, mosaic)."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dipmed.io.dicom_geometry import slice_planes
from dipmed.volume import Volume

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
NIBABEL_DATA = Path(nib.__file__).parent / "nicom" / "tests" / "data"


def _item(**values) -> Sequence:
    ds = Dataset()
    for key, value in values.items():
        setattr(ds, key, value)
    return Sequence([ds])


def write_enhanced_mr(
    path: Path, volume: Volume, *, seed: int = 0, b_values: tuple[float, ...] = ()
) -> Path:
    """An Enhanced MR Image Storage file; frames stored in a shuffled order.

    With `b_values`, one volume per b-value (MRDiffusionSequence per frame), volume v
    stored as `volume` + 0.25 v (one stored unit more).
    """
    planes = slice_planes(volume.affine, volume.shape[2])
    slope, intercept = 0.25, -1100.0
    stored = np.round((volume.array - intercept) / slope).astype("<u2")
    frames = [(v, k) for v in range(max(len(b_values), 1)) for k in range(volume.shape[2])]
    order = np.random.default_rng(seed).permutation(len(frames))
    ds = _multiframe(np.stack([stored[:, :, frames[i][1]].T + frames[i][0] for i in order]))
    spacing = [volume.spacing[1], volume.spacing[0]]
    ds.SharedFunctionalGroupsSequence = Sequence([Dataset()])
    shared = ds.SharedFunctionalGroupsSequence[0]
    shared.PixelMeasuresSequence = _item(PixelSpacing=spacing, SliceThickness=volume.spacing[2])
    shared.PlaneOrientationSequence = _item(ImageOrientationPatient=list(planes[0][1]))
    shared.PixelValueTransformationSequence = _item(
        RescaleSlope=slope, RescaleIntercept=intercept, RescaleType="US"
    )
    per_frame = []
    for v, k in (frames[i] for i in order):
        frame = Dataset()
        frame.PlanePositionSequence = _item(ImagePositionPatient=list(planes[k][0]))
        if b_values:
            frame.MRDiffusionSequence = _item(DiffusionBValue=b_values[v])
        per_frame.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    return _save(ds, path)


def write_stripped_enhanced_mr(
    path: Path,
    frames: np.ndarray,
    *,
    pixel_spacing: tuple[float, float] | None = (0.9, 0.8),
    between: float | None = 3.0,
    thickness: float = 2.5,
) -> Path:
    """An Enhanced MR file whose functional groups were stripped (as some anonymisers
    do): no position or orientation anywhere; only top-level PixelSpacing (rows, columns),
    SpacingBetweenSlices and SliceThickness, each left out when None. `frames`: (n, rows,
    cols) stored values."""
    ds = _multiframe(frames)
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if between is not None:
        ds.SpacingBetweenSlices = between
    ds.SliceThickness = thickness
    return _save(ds, path)


def nibabel_mosaic(name: str, path: Path) -> Path | None:
    """A real Siemens mosaic from nibabel's test data (siemens_dwi_0 or _1000: one DWI
    series, b = 0 and 1000) written to `path`; None when nibabel ships no test data."""
    sample = NIBABEL_DATA / f"{name}.dcm.gz"
    if not sample.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.decompress(sample.read_bytes()))
    return path


def _multiframe(frames: np.ndarray) -> Dataset:
    """An Enhanced MR dataset holding `frames` (n, rows, cols), no functional groups yet."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_MR, generate_uid()
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "MR", generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID = "DOE^JOHN", "PID-999"
    ds.NumberOfFrames, ds.Rows, ds.Columns = frames.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(frames, dtype="<u2").tobytes()
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path
