"""Siemens mosaic series: each file one volume, its slices tiled in one image."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from dipmed.errors import InputError
from dipmed.io import dicom_geometry as geo
from dipmed.io.dicom_pixels import decode_pixels
from dipmed.io.dicom_scan import Series
from dipmed.io.volumes import given, labels


def mosaic_files(series: Series) -> list[tuple[Dataset, Path]]:
    """(header, file) of each volume, in acquisition order (InstanceNumber)."""
    return sorted(
        zip(series.headers, series.files, strict=True),
        key=lambda pair: int(pair[0].get("InstanceNumber", 0) or 0),
    )


def unpack_mosaic(header: Dataset, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float32 array (X, Y, Z), RAS affine, LPS position of the first slice)."""
    with warnings.catch_warnings():  # nibabel warns that its DICOM readers are experimental
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

    decode_pixels(header, path)  # clear message when the pixel data cannot be decoded
    try:
        wrapper = dicomwrappers.wrapper_from_data(header)
        data, lps = wrapper.get_data(), wrapper.affine  # (rows, cols, slices), row index first
    except Exception as error:
        raise InputError(
            f"{path}: Siemens mosaic cannot be unpacked ({error}); convert it with dcm2niix first"
        ) from None
    affine = geo.LPS_TO_RAS @ lps[:, [1, 0, 2, 3]]
    array = np.ascontiguousarray(np.transpose(data, (1, 0, 2)), dtype=np.float32)
    return array, affine, lps[:3, 3]


def mosaic_volumes(series: Series) -> list[dict]:
    """What tells apart the volumes of a mosaic series; [] when it holds one."""
    files = mosaic_files(series)
    if len(files) < 2:
        return []
    return [
        labels(
            index,
            b_value=_b_value(header),
            acquisition_number=header.get("AcquisitionNumber"),
            acquisition_time=header.get("AcquisitionTime"),
        )
        for index, (header, _) in enumerate(files)
    ]


def _b_value(header: Dataset) -> object:
    """The standard DiffusionBValue, else Siemens' private B_value (0019,xx0C)."""
    if given(header.get("DiffusionBValue")):
        return header.DiffusionBValue
    try:
        return header.private_block(0x0019, "SIEMENS MR HEADER")[0x0C].value
    except (KeyError, ValueError):
        return None
