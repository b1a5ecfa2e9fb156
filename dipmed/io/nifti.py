"""NIfTI-1/2 reading and writing (.nii, .nii.gz) with the source header kept."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from dipmed.errors import InputError
from dipmed.io.encoding import is_int16_exact
from dipmed.io.volumes import labels, pick_volume
from dipmed.volume import Meta, Volume

MAX_VOXELS = 2**31  # 8 GiB as float32: beyond this a header is corrupt or needs cropping
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    zlib.error,
    gzip.BadGzipFile,
    nib.filebasedimages.ImageFileError,
)


def is_nifti_path(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: Path, *, volume_index: int | None = None) -> Volume:
    """Read a 3D NIfTI, or one volume of a 4D one (`volume_index`), as float32."""
    image = _load_header(path)
    shape = tuple(int(n) for n in image.shape)
    check_voxel_count(path, shape[:3])
    index = _choose_volume(path, shape, volume_index)
    _check_file_size(path, image)
    try:
        data = np.asanyarray(image.dataobj[index], dtype=np.float32)
    except _READ_ERRORS as error:
        raise InputError(
            f"{path}: image data is truncated or corrupt ({_reason(error)}); "
            "re-export or re-copy the file"
        ) from None
    return Volume(np.ascontiguousarray(data), image.affine, _meta(path), image.header.copy())


def write_nifti(volume: Volume, path: Path) -> None:
    """Write `volume` to `path`, reusing the source NIfTI header where there is one.

    Integer data that fit int16 are stored as int16, anything else as float32: lossless.
    """
    header = volume.source if isinstance(volume.source, nib.Nifti1Header) else None
    image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    dtype = np.int16 if is_int16_exact(volume.array) else np.float32
    image = image_class(
        volume.array.astype(dtype),
        volume.affine,
        header=header.copy() if header is not None else None,
    )
    image.header.set_data_dtype(dtype)
    image.header.set_slope_inter(1.0, 0.0)
    image.set_sform(volume.affine, _code(header, "sform_code"))
    image.set_qform(volume.affine, _code(header, "qform_code"))
    if header is None:
        image.header.set_xyzt_units("mm", "sec")
    nib.save(image, str(path))


def check_voxel_count(path: Path, shape: tuple[int, ...]) -> None:
    """Refuse empty or implausibly large grids before anything is allocated."""
    if any(n < 1 for n in shape):
        raise InputError(f"{path}: image has an empty axis (shape {shape}); the file is corrupt")
    count = int(np.prod([int(n) for n in shape], dtype=object))
    if count > MAX_VOXELS:
        raise InputError(
            f"{path}: header declares {'x'.join(map(str, shape))} voxels "
            f"({count * 4 / 2**30:,.0f} GiB as float32), over dipmed's limit of 2^31 voxels; "
            "the header is corrupt or the volume must be cropped first"
        )


def _load_header(path: Path) -> nib.Nifti1Image:
    try:
        image = nib.load(str(path))
    except _READ_ERRORS as error:
        raise InputError(
            f"{path} is not a readable NIfTI file ({_reason(error)}); "
            "check that it is a .nii/.nii.gz image"
        ) from None
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise InputError(f"{path} is a {type(image).__name__}, not NIfTI; convert it to .nii.gz")
    return image


def _choose_volume(path: Path, shape: tuple[int, ...], volume_index: int | None) -> tuple:
    index = pick_volume(_volume_count(path, shape), volume_index, path, "is 4D with")
    return (slice(None),) * 3 + (index,) * (len(shape) > 3) + (0,) * max(len(shape) - 4, 0)


def _volume_count(path: Path, shape: tuple[int, ...]) -> int:
    """How many 3D volumes a 3D or 4D image holds; other shapes are refused."""
    if len(shape) < 3:
        raise InputError(f"{path} is {len(shape)}D (shape {shape}); dipmed restores 3D volumes")
    if len(shape) > 4 and any(n != 1 for n in shape[4:]):
        raise InputError(
            f"{path} is {len(shape)}D (shape {shape}); dipmed reads 3D volumes "
            "and 4D series only: split it into 3D volumes first"
        )
    return shape[3] if len(shape) > 3 else 1


def nifti_volumes(path: Path) -> list[dict]:
    """The volumes of a 4D NIfTI with their time (where the header gives its unit) and
    b-value (from a .bval file beside it, as BIDS and FSL keep them); [] for 3D."""
    image = _load_header(path)
    count = _volume_count(path, tuple(int(n) for n in image.shape))
    if count < 2:
        return []
    header = image.header
    unit = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}.get(header.get_xyzt_units()[1])
    step = float(header["pixdim"][4]) * (unit or 0.0)
    b_values = _b_values(path, count)
    return [
        labels(
            i,
            time_s=round(float(header["toffset"]) * unit + i * step, 6) if step > 0 else None,
            b_value=b_values[i] if b_values else None,
        )
        for i in range(count)
    ]


def _b_values(path: Path, count: int) -> list[float] | None:
    bval = sidecar_path(path).with_suffix(".bval")
    try:
        values = [float(v) for v in bval.read_text().split()]
    except (OSError, ValueError):
        return None
    return values if len(values) == count else None


def _check_file_size(path: Path, image: nib.Nifti1Image) -> None:
    if path.name.lower().endswith(".gz"):
        return  # the uncompressed size is only known by decompressing; read errors catch it
    header = image.header
    itemsize = header.get_data_dtype().itemsize
    needed = int(header["vox_offset"]) + int(np.prod(image.shape)) * itemsize
    if path.stat().st_size < needed:
        raise InputError(
            f"{path} is truncated: {path.stat().st_size} bytes, header needs "
            f"{needed}; re-export or re-copy the file"
        )


def sidecar_path(path: Path) -> Path:
    """The BIDS JSON sidecar beside a NIfTI path: name.nii.gz -> name.json."""
    stem = path.name[: -len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem
    return path.with_name(stem + ".json")


def _meta(path: Path) -> Meta:
    """Modality from a BIDS JSON sidecar, else from the BIDS suffix of the file name."""
    modality = ""
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        try:
            modality = str(json.loads(sidecar.read_text()).get("Modality", ""))
        except (OSError, ValueError, AttributeError):
            modality = ""
    if not modality:
        suffix = sidecar.stem.rsplit("_", 1)[-1].lower()
        modality = {"ct": "CT"}.get(suffix, "MR" if suffix in _MR_SUFFIXES else "unknown")
    return Meta(modality=modality, units="HU" if modality == "CT" else "", source_format="nifti")


_MR_SUFFIXES = {"t1w", "t2w", "flair", "pdw", "t2starw", "dwi", "bold", "mp2rage", "unit1"}


def _code(header: nib.Nifti1Header | None, key: str) -> int:
    code = int(header[key]) if header is not None else 0
    return code if code > 0 else 1  # 1 = scanner coordinates


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:120]
