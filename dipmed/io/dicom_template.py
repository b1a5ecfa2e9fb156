"""Classic single-slice CT/MR datasets built from scratch.

Used for new series (samples, tests) and for derived series whose source is a
multi-frame or mosaic file, whose patient, study and frame of reference are copied in.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dipmed.errors import InputError

SOP_CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}

# Patient, study, frame of reference and equipment attributes a derived series keeps.
KEPT_FROM_SOURCE = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    "Manufacturer",
    "ManufacturerModelName",
    "InstitutionName",
    "PatientPosition",
    "SeriesNumber",
    "SeriesDescription",
    "SeriesInstanceUID",
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
    "KVP",
)


def classic_template(modality: str, *, copy_from: Dataset | None = None) -> Dataset:
    """A CT or MR Image Storage dataset with every type 1/2 attribute present.

    Geometry, pixel data and SOP instance UID are set by the writer.
    """
    if modality not in SOP_CLASSES:
        raise InputError(
            f"cannot write a DICOM series of modality {modality!r} (only CT and "
            "MR); write NIfTI instead (an output path ending .nii.gz)"
        )
    ds = Dataset()
    _blank_identity(ds)
    ds.SOPClassUID = SOP_CLASSES[modality]
    ds.Modality = modality
    ds.ImageType = ["ORIGINAL", "PRIMARY"] + (["AXIAL"] if modality == "CT" else [])
    ds.update(_MODALITY_ATTRIBUTES[modality]())
    if copy_from is not None:
        for keyword in KEPT_FROM_SOURCE:
            if keyword in copy_from:
                setattr(ds, keyword, copy_from[keyword].value)
    return ds


def _blank_identity(ds: Dataset) -> None:
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "", "", "", ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "", "", "", ""
    ds.ReferringPhysicianName, ds.PositionReferenceIndicator = "", ""
    ds.SeriesNumber, ds.PatientPosition, ds.Manufacturer = 1, "HFS", "dipmed"
    ds.ContentDate, ds.ContentTime, ds.PatientOrientation = "", "", ""
    ds.InstanceNumber, ds.AcquisitionNumber = 1, 1
    ds.SliceThickness, ds.Laterality = "", ""


def _ct() -> Dataset:
    ds = Dataset()
    ds.KVP = ""
    return ds


def _mr() -> Dataset:
    ds = Dataset()
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "GR", "NONE", ""
    ds.MRAcquisitionType, ds.EchoTime, ds.EchoTrainLength = "3D", "", ""
    ds.RepetitionTime = ""
    return ds


_MODALITY_ATTRIBUTES = {"CT": _ct, "MR": _mr}
