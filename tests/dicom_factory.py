"""Test-only builders for DICOM forms dipmed reads but does not write (multi-frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dipmed.io.dicom_geometry import slice_planes
from dipmed.volume import Volume


def _item(**values) -> Sequence:
    ds = Dataset()
    for key, value in values.items():
        setattr(ds, key, value)
    return Sequence([ds])


def write_enhanced_mr(path: Path, volume: Volume, *, seed: int = 0) -> Path:
    """An Enhanced MR Image Storage file; frames stored in a shuffled order."""
    planes = slice_planes(volume.affine, volume.shape[2])
    order = np.random.default_rng(seed).permutation(volume.shape[2])
    slope, intercept = 0.25, -1100.0
    stored = np.round((volume.array - intercept) / slope).astype("<u2")
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4.1", generate_uid()
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "MR", generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID = "DOE^JOHN", "PID-999"
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
    ds.NumberOfFrames = volume.shape[2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    spacing = [volume.spacing[1], volume.spacing[0]]
    ds.SharedFunctionalGroupsSequence = Sequence([Dataset()])
    shared = ds.SharedFunctionalGroupsSequence[0]
    shared.PixelMeasuresSequence = _item(PixelSpacing=spacing, SliceThickness=volume.spacing[2])
    shared.PlaneOrientationSequence = _item(ImageOrientationPatient=list(planes[0][1]))
    shared.PixelValueTransformationSequence = _item(
        RescaleSlope=slope, RescaleIntercept=intercept, RescaleType="US"
    )
    frames = []
    for k in order:
        frame = Dataset()
        frame.PlanePositionSequence = _item(ImagePositionPatient=list(planes[k][0]))
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.stack([stored[:, :, k].T for k in order]).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path
