"""The only code that touches image files: read any supported input, write any output."""

from __future__ import annotations

import json
from pathlib import Path

from dipmed.errors import InputError
from dipmed.io.dicom_read import DicomSource, read_series, series_volumes, stack_kind
from dipmed.io.dicom_scan import Series, choose_series, read_header, scan_folder, series_of
from dipmed.io.dicom_write import write_derived_series
from dipmed.io.nifti import is_nifti_path, nifti_volumes, read_nifti, sidecar_path, write_nifti
from dipmed.io.paths import atomic_output, check_output
from dipmed.volume import Volume

__all__ = [
    "DicomSource",
    "find_series",
    "list_volumes",
    "read_volume",
    "write_volume",
    "output_format",
]


def find_series(path: Path) -> list[Series] | None:
    """The image series in a DICOM folder or file; None for a NIfTI file."""
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path")
    if path.is_dir():
        return scan_folder(path)
    if is_nifti_path(path):
        return None
    header = read_header(path)
    if header is None:
        raise InputError(
            f"{path} is neither NIfTI (.nii, .nii.gz) nor DICOM; point dipmed at "
            "a NIfTI file, a DICOM series folder or a multi-frame DICOM file"
        )
    if "PixelData" not in header:
        raise InputError(f"{path} holds no image pixel data; point dipmed at an image series")
    return [series_of([(path, header)])]


def read_volume(path: Path, *, series: str | None = None, volume: int | None = None) -> Volume:
    """Read a NIfTI file, a DICOM series folder, or a multi-frame/mosaic DICOM file."""
    found = find_series(path)
    if found is None:
        _check_no_series(path, series)
        return read_nifti(path, volume_index=volume)
    return read_series(_chosen(path, found, series), volume_index=volume)


def list_volumes(path: Path, found: list[Series] | None, *, series: str | None = None) -> list:
    """What tells apart the volumes of a multi-volume input (4D NIfTI, mosaic series,
    multi-volume multi-frame file), one dict each with its "index"; [] for one volume.

    `found` is what `find_series(path)` returned."""
    if found is None:
        _check_no_series(path, series)
        return nifti_volumes(path)
    return series_volumes(_chosen(path, found, series))


def _check_no_series(path: Path, series: str | None) -> None:
    if series is not None:
        raise InputError(f"--series applies to DICOM input; {path} is NIfTI: drop it")


def _chosen(path: Path, found: list[Series], series: str | None) -> Series:
    chosen = choose_series(found, series, path)
    if path.is_file() and stack_kind(chosen.headers[0]) == "classic":
        raise InputError(f"{path} is one slice of a series; pass the folder holding the series")
    return chosen


def output_format(path: Path) -> str:
    """ "nifti" for .nii/.nii.gz paths, else "dicom" (a folder receiving a derived series)."""
    return "nifti" if is_nifti_path(path) else "dicom"


def write_volume(
    volume: Volume,
    output: Path,
    *,
    input_path: Path | None,
    overwrite: bool = False,
    label: str = "dipmed",
    derivation: str = "dipmed",
    number_offset: int = 1000,
    sidecar: dict | None = None,
) -> None:
    """Write atomically in the format the output path names; never over the input. A
    DICOM output is a derived series numbered the source's + `number_offset`; a NIfTI
    output gets a JSON sidecar, with the `sidecar` keys added."""
    check_output(input_path, output, overwrite=overwrite)
    if output_format(output) == "nifti":
        _write_nifti_with_sidecar(volume, output, input_path, overwrite, derivation, sidecar)
        return
    if not isinstance(volume.source, DicomSource):
        source = f"{input_path} is NIfTI" if input_path else "this volume was not read from DICOM"
        raise InputError(
            f"DICOM output needs DICOM input; {source}: give an output path ending .nii or .nii.gz"
        )
    with atomic_output(output) as temporary:
        write_derived_series(
            volume, temporary, label=label, derivation=derivation, number_offset=number_offset
        )


def _write_nifti_with_sidecar(
    volume: Volume,
    output: Path,
    input_path: Path | None,
    overwrite: bool,
    derivation: str,
    extra: dict | None,
) -> None:
    """NIfTI plus a BIDS JSON sidecar that keeps modality and units (no identifiers) and
    SkullStripped (BIDS requires it of anatomical derivatives; dipmed strips nothing, so
    it is the input sidecar's value, else false)."""
    sidecar = sidecar_path(output)
    check_output(input_path, sidecar, overwrite=overwrite)
    fields = {
        "Modality": volume.meta.modality,
        "Units": volume.meta.units,
        "SeriesDescription": volume.meta.series_description,
        "SourceFormat": volume.meta.source_format,
        "Description": derivation,
        "Warnings": list(volume.meta.warnings),  # what reading the input had to assume
    }
    fields = {k: v for k, v in fields.items() if v}
    fields |= {"SkullStripped": _skull_stripped(input_path)} | (extra or {})
    with atomic_output(output) as image_tmp, atomic_output(sidecar) as sidecar_tmp:
        write_nifti(volume, image_tmp)
        sidecar_tmp.write_text(json.dumps(fields, indent=2))


def _skull_stripped(input_path: Path | None) -> bool:
    """The input's BIDS sidecar says SkullStripped: true (a NIfTI input only)."""
    if input_path is None or not is_nifti_path(input_path):
        return False
    try:
        return json.loads(sidecar_path(input_path).read_text()).get("SkullStripped") is True
    except (OSError, ValueError, AttributeError):
        return False
