"""Multi-frame DICOM files: the frames of one file as slices, with the geometry it holds.

Each attribute is looked up for a frame in its per-frame functional group, then in the
shared group, then at the top level of the dataset (legacy files, and files whose
functional groups were stripped, keep PixelSpacing there). Where no frame has an
orientation or a position, the frames are read under an assumption that is returned as a
warning: ImageOrientationPatient 1\\0\\0\\0\\1\\0, and one stack in file order from the
origin, SpacingBetweenSlices (else SliceThickness) apart. Frames that share positions are
split into volumes by what tells them apart (temporal index, b-value, echo, phase).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from dipmed.errors import InputError
from dipmed.io import dicom_geometry as geo
from dipmed.io.dicom_pixels import decode_pixels
from dipmed.io.nifti import check_voxel_count
from dipmed.io.volumes import given, labels, pick_volume, plain

ASSUMED_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # axial: rows to the left, columns back
_MEASURES = "PixelMeasuresSequence"
_VOLUME_KEYS = {  # what tells apart volumes whose frames share positions: name -> path
    "temporal_index": ("FrameContentSequence", "TemporalPositionIndex"),
    "b_value": ("MRDiffusionSequence", "DiffusionBValue"),
    "gradient": (
        "MRDiffusionSequence",
        "DiffusionGradientDirectionSequence",
        "DiffusionGradientOrientation",
    ),
    "echo_time_ms": ("MREchoSequence", "EffectiveEchoTime"),
    "trigger_delay_ms": ("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"),
}
_NEEDED = {  # what a refusal names, and how to add it with dcmtk's dcmodify
    "PixelSpacing": ("PixelSpacing", '-i "PixelSpacing=ROW\\COL"'),
    "SpacingBetweenSlices": (
        "SpacingBetweenSlices or SliceThickness",
        '-i "SpacingBetweenSlices=MM"',
    ),
}


@dataclass(frozen=True)
class FrameStack:
    """One volume of a multi-frame file: its slices in Z order and what was assumed."""

    slices: list[geo.Slice]
    step_mm: float  # slice step where the positions do not give it (one frame)
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Planes:
    """Per-frame geometry in LPS mm and what had to be assumed for it."""

    positions: np.ndarray  # (frames, 3) ImagePositionPatient
    orientations: np.ndarray  # (frames, 6) ImageOrientationPatient
    spacings: np.ndarray  # (frames, 2) PixelSpacing: between rows, between columns
    step_mm: float
    warnings: tuple[str, ...]


def frame_count(header: Dataset) -> int:
    return int(header.get("NumberOfFrames", 1) or 1)


def read_frames(dataset: Dataset, path: Path, volume_index: int | None) -> FrameStack:
    """The frames of volume `volume_index` (None: the only one) as slices in Z order."""
    count = frame_count(dataset)
    check_voxel_count(path, (int(dataset.Rows), int(dataset.Columns), count))
    planes = _planes(dataset, path, count)
    groups = _volume_groups(dataset, planes)
    chosen = groups[pick_volume(len(groups), volume_index, path, "is a multi-frame file of")]
    pixels = decode_pixels(dataset, path)
    frames = pixels.reshape((count,) + pixels.shape[-2:])
    slices = [_slice(dataset, i, planes, frames) for i in chosen]
    order = geo.slice_order(slices, path)
    return FrameStack([slices[i] for i in order], planes.step_mm, planes.warnings)


def frame_volumes(dataset: Dataset, path: Path) -> list[dict]:
    """What tells apart the volumes of a multi-frame file; [] when it holds one."""
    groups = _volume_groups(dataset, _planes(dataset, path, frame_count(dataset)))
    if len(groups) < 2:
        return []
    return [
        labels(n, **dict(_volume_key(dataset, group[0])), frames=len(group))
        for n, group in enumerate(groups)
    ]


def frame_value(dataset: Dataset, index: int, path: tuple[str, ...], *, top_level=True):
    """The attribute `path` (sequences..., keyword) of frame `index`: from its per-frame
    group, else the shared group, else (`top_level`) the dataset's own keyword; or None."""
    *sequences, keyword = path
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence") or []
    shared = dataset.get("SharedFunctionalGroupsSequence") or []
    for group in [*per_frame[index : index + 1], *shared[:1]]:
        item = _item(group, sequences)
        if item is not None and given(item.get(keyword)):
            return item.get(keyword)
    value = dataset.get(keyword) if top_level else None
    return value if given(value) else None


def _item(group: Dataset, sequences: list[str]) -> Dataset | None:
    for name in sequences:
        sequence = group.get(name)
        if not sequence:
            return None
        group = sequence[0]
    return group


def _slice(dataset: Dataset, index: int, planes: _Planes, frames: np.ndarray) -> geo.Slice:
    rescale = "PixelValueTransformationSequence"
    slope = frame_value(dataset, index, (rescale, "RescaleSlope"))
    intercept = frame_value(dataset, index, (rescale, "RescaleIntercept"))
    return geo.Slice(
        position=planes.positions[index],
        orientation=planes.orientations[index],
        spacing=tuple(float(v) for v in planes.spacings[index]),
        shape=frames.shape[1:],
        slope=float(slope or 1),
        intercept=float(intercept or 0),
        pixels=lambda: frames[index],
    )


def _planes(dataset: Dataset, path: Path, count: int) -> _Planes:
    def per_frame(*keys: str, top_level: bool = True) -> list:
        return [frame_value(dataset, i, keys, top_level=top_level) for i in range(count)]

    spacings = per_frame(_MEASURES, "PixelSpacing")
    orientations = per_frame("PlaneOrientationSequence", "ImageOrientationPatient")
    positions = per_frame("PlanePositionSequence", "ImagePositionPatient", top_level=False)
    step = _slice_step(dataset)
    _check_complete(dataset, path, spacings, orientations, positions, step)
    warnings = []
    if orientations[0] is None:
        orientations = [ASSUMED_ORIENTATION] * count
        warnings.append(
            "no ImageOrientationPatient: assumed 1\\0\\0\\0\\1\\0 (axial; rows toward the "
            "patient's left), so orientation and left/right are unverified"
        )
    if positions[0] is None:
        positions, note = _stacked(dataset, orientations[0], step, count)
        warnings.append(note)
    step_mm = step[0] if step else 1.0
    return _Planes(
        _floats(positions), _floats(orientations), _floats(spacings), step_mm, tuple(warnings)
    )


def _floats(values: list) -> np.ndarray:
    return np.array([[float(v) for v in item] for item in values])


def _slice_step(dataset: Dataset) -> tuple[float, str] | None:
    """The distance between frames in mm and the attribute it came from, or None."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = frame_value(dataset, 0, (_MEASURES, keyword))
        if value is not None and abs(float(value)) > 0:
            return abs(float(value)), keyword
    return None


def _stacked(dataset: Dataset, orientation, step, count: int) -> tuple[list, str]:
    """Positions of frames stacked in file order along the slice normal, and the note."""
    origin = dataset.get("ImagePositionPatient")
    start = np.array([float(v) for v in origin]) if given(origin) else np.zeros(3)
    step_mm, source = step or (1.0, "assumed")
    normal = geo.slice_normal(np.array(orientation, dtype=float))
    where = "the top-level ImagePositionPatient" if given(origin) else "origin 0\\0\\0"
    if source == "SliceThickness":
        source = "SliceThickness; no SpacingBetweenSlices, so no gap assumed"
    layout = (
        f"the {count} frames read as one stack in file order from {where}, {step_mm:g} mm apart"
        if count > 1
        else f"the frame placed at {where}, {step_mm:g} mm thick"
    )
    note = (
        f"no ImagePositionPatient per frame: {layout} ({source}), so world positions are unverified"
    )
    return [start + k * step_mm * normal for k in range(count)], note


def _check_complete(dataset, path, spacings, orientations, positions, step) -> None:
    """Refuse geometry given for some frames only, or a voxel size nowhere given."""
    plane = {"ImageOrientationPatient": orientations, "ImagePositionPatient": positions}
    for keyword, values in plane.items():
        missing = [i for i, v in enumerate(values) if v is None]
        if 0 < len(missing) < len(values):
            raise InputError(
                f"{path}: frame {missing[0] + 1} lacks {keyword} where other frames have "
                "it; the multi-frame geometry is incomplete: re-export the file"
            )
    needed = ["PixelSpacing"] if any(v is None for v in spacings) else []
    if positions[0] is None and len(positions) > 1 and step is None:
        needed.append("SpacingBetweenSlices")
    if needed:
        assumable = [k for k, v in plane.items() if v[0] is None]
        if "ImagePositionPatient" in dataset:
            assumable = [k for k in assumable if k != "ImagePositionPatient"]
        _refuse_unknown_size(path, needed, assumable)


def _refuse_unknown_size(path: Path, needed: list[str], assumable: list[str]) -> None:
    names = " and no ".join(_NEEDED[n][0] for n in needed)
    also = f" (nor {' or '.join(assumable)})" if assumable else ""
    dcmodify = " ".join(_NEEDED[n][1] for n in needed)
    raise InputError(
        f"{path} has no {names}{also} in its functional groups or at the top level, so "
        f"its voxel size is unknown; add {'them' if len(needed) > 1 else 'it'} "
        f"(dcmodify {dcmodify} FILE) or re-export the file with its functional groups"
    )


def _volume_groups(dataset: Dataset, planes: _Planes) -> list[list[int]]:
    """Frame indices of each volume: all frames, unless frames share positions; then
    grouped by what tells them apart (a group that still repeats positions is refused
    when read)."""
    count = len(planes.positions)
    if len(np.unique(np.round(planes.positions, 2), axis=0)) == count:
        return [list(range(count))]
    groups: dict[tuple, list[int]] = {}
    for index in range(count):
        groups.setdefault(_volume_key(dataset, index), []).append(index)
    return list(groups.values())


def _volume_key(dataset: Dataset, index: int) -> tuple:
    return tuple(
        (name, plain(frame_value(dataset, index, path, top_level=False)))
        for name, path in _VOLUME_KEYS.items()
    )
