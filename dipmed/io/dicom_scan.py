"""Finding DICOM image files in a folder and grouping them into series."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dipmed.errors import InputError


@dataclass(frozen=True)
class Series:
    """One series: its files and their headers (pixel data deferred, not loaded)."""

    uid: str
    number: str
    description: str
    modality: str
    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]

    def summary(self) -> dict:
        """What `dipmed info` lists for a series (no patient identifiers)."""
        return {
            "uid": self.uid,
            "number": self.number,
            "description": self.description,
            "modality": self.modality,
            "files": len(self.files),
        }


def read_header(path: Path) -> Dataset | None:
    """The file's dataset with large values (pixel data) deferred, or None if not DICOM."""
    try:
        return pydicom.dcmread(path, defer_size=4096)
    except (
        InvalidDicomError,
        OSError,
        ValueError,
        EOFError,
        KeyError,
        TypeError,
        AttributeError,
        OverflowError,
        MemoryError,
    ):
        return None


def scan_folder(folder: Path) -> list[Series]:
    """All image series below `folder`, ordered by series number then UID."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"{folder} is empty; point dipmed at a DICOM series folder")
    groups: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    dicom_count = 0
    for path in files:
        header = read_header(path)
        dicom_count += header is not None
        if header is not None and "PixelData" in header:
            groups[str(header.get("SeriesInstanceUID", ""))].append((path, header))
    if not groups:
        _refuse_imageless(folder, len(files), dicom_count)
    series = [series_of(members) for members in groups.values()]
    return sorted(series, key=lambda s: (_number_key(s.number), s.uid))


def choose_series(series: list[Series], selector: str | None, folder: Path) -> Series:
    """The one series to process: the only one, or the one `selector` names."""
    if selector is None:
        if len(series) == 1:
            return series[0]
        listing = "; ".join(
            f"{s.number or '?'} {s.description!r} ({len(s.files)} files)" for s in series[:6]
        )
        raise InputError(
            f"{folder} holds {len(series)} series ({listing}); choose one with "
            f"--series NUMBER or --series UID (see: dipmed info {folder})"
        )
    matches = [s for s in series if selector in (s.uid, s.number)]
    if len(matches) == 1:
        return matches[0]
    problem = "matches several series; use its UID" if matches else "matches no series"
    raise InputError(
        f"--series {selector} {problem} in {folder}; list them with: dipmed info {folder}"
    )


def series_of(members: list[tuple[Path, Dataset]]) -> Series:
    """A Series from (file, header) pairs that share one SeriesInstanceUID."""
    first = members[0][1]
    return Series(
        uid=str(first.get("SeriesInstanceUID", "")),
        number=str(first.get("SeriesNumber", "") or ""),
        description=str(first.get("SeriesDescription", "") or ""),
        modality=str(first.get("Modality", "") or "unknown"),
        files=tuple(p for p, _ in members),
        headers=tuple(h for _, h in members),
    )


def _refuse_imageless(folder: Path, file_count: int, dicom_count: int) -> None:
    if dicom_count:
        raise InputError(
            f"{folder} holds {dicom_count} DICOM file(s) but none with image pixel "
            "data; point dipmed at an image series"
        )
    raise InputError(
        f"{folder} holds no DICOM files ({file_count} file(s) checked); point "
        "dipmed at a DICOM series folder or a .nii/.nii.gz file"
    )


def _number_key(number: str) -> tuple[int, str]:
    return (int(number), "") if number.lstrip("-").isdigit() else (2**31, number)
