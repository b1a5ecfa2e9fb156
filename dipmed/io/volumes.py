"""Inputs holding several volumes (4D NIfTI, mosaic series, multi-volume multi-frame files):
choosing one by its index (--volume) and labelling each by what tells it apart."""

from __future__ import annotations

from pathlib import Path

from dipmed.errors import InputError


def pick_volume(count: int, index: int | None, source: Path, holds: str) -> int:
    """The index of the volume to read; `holds` words the refusal ("is 4D with")."""
    if index is None:
        if count > 1:
            raise InputError(
                f"{source} {holds} {count} volumes; choose one with --volume 0..{count - 1}"
            )
        return 0
    if not 0 <= index < count:
        raise InputError(
            f"--volume {index} is out of range: {source} holds {count} "
            f"volume(s); use 0..{count - 1}"
        )
    return index


def labels(index: int, **values: object) -> dict:
    """{"index": index, name: value, ...} for the values present, JSON-ready."""
    return {"index": index} | {name: plain(v) for name, v in values.items() if given(v)}


def given(value: object) -> bool:
    """False for an absent or empty attribute value (None, "", an empty list)."""
    return value is not None and not (hasattr(value, "__len__") and len(value) == 0)


def plain(value: object) -> object:
    """A DICOM or header value as int, float, str or a tuple of them (hashable)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        return value.strip()
    if hasattr(value, "__len__"):
        return tuple(plain(v) for v in value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return int(number) if number.is_integer() else number
