"""Shared fixtures: tiny synthetic volumes and DICOM series written to temp folders."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.uid import generate_uid
from scipy.ndimage import gaussian_filter

from dipmed.cli import main
from dipmed.io.dicom_template import classic_template
from dipmed.io.dicom_write import write_new_series
from dipmed.phantom import add_rician_noise, ct_phantom, mr_phantom
from dipmed.volume import Volume

PATIENT = {"PatientName": "DOE^JANE", "PatientID": "PID-123456", "PatientBirthDate": "19800229"}


def oblique_affine(spacing=(0.8, 0.7, 2.5), origin=(12.3, -45.6, 78.9)) -> np.ndarray:
    """An RAS affine rotated about two axes, so no axis is aligned with the world."""
    a, b = np.deg2rad(17.0), np.deg2rad(-11.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def ct_template(description: str = "CT phantom", **extra) -> object:
    template = classic_template("CT")
    for key, value in {**PATIENT, **extra}.items():
        setattr(template, key, value)
    template.SeriesDescription = description
    template.StudyID, template.KVP = "1", "120"
    return template


def write_ct_series(folder: Path, volume: Volume, *, intercept: float = -1024.0, **extra) -> object:
    """Write `volume` (integer HU) as a CT series stored with RescaleIntercept `intercept`."""
    template = ct_template(**extra)
    write_new_series(volume, folder, template=template, rescale=(1.0, intercept))
    return template


def write_mr_pair(folder: Path) -> tuple[Path, Path]:
    """A clean MR phantom (the reference, edges blurred by 1 voxel as partial volume does)
    and a Rician-noisy copy, 34x30x22 voxels, as NIfTI files in `folder`."""
    clean = gaussian_filter(mr_phantom((34, 30, 22)), 1.0)
    noisy = add_rician_noise(clean, 0.06 * clean.max(), np.random.default_rng(5))
    affine = np.diag([1.1, 0.9, 1.6, 1.0])
    paths = folder / "clean.nii.gz", folder / "sub-01_T1w.nii.gz"
    for path, data in zip(paths, (clean, noisy), strict=True):
        nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), path)
    return paths


@pytest.fixture
def mr_pair(tmp_path):
    """`write_mr_pair` in the test's own folder."""
    return write_mr_pair(tmp_path)


@pytest.fixture
def ct_volume() -> Volume:
    """A 19x17x16 CT phantom in HU on an oblique grid (awkward sizes on purpose)."""
    return Volume(ct_phantom((19, 17, 16)), oblique_affine())


@pytest.fixture
def ct_series(tmp_path: Path, ct_volume: Volume) -> Path:
    folder = tmp_path / "ct_series"
    write_ct_series(folder, ct_volume, SeriesInstanceUID=generate_uid(), SeriesNumber=7)
    return folder


def digest(path: Path) -> str:
    """A hash of every file name, size, mtime and byte under `path` (input untouched?)."""
    sha = hashlib.sha256()
    files = sorted(p for p in path.rglob("*")) if path.is_dir() else [path]
    for item in files:
        if item.is_file():
            stat = item.stat()
            sha.update(f"{item}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            sha.update(item.read_bytes())
    return sha.hexdigest()


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    code = main([os.fspath(a) if isinstance(a, Path) else str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_cli_quietly(*args: object) -> tuple[int, str, str]:
    """`run_cli` for module-scoped fixtures (no capsys there)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([os.fspath(a) if isinstance(a, Path) else str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def bids_errors(folder: Path) -> list[str]:
    """The errors the BIDS validator (bids-validator-deno, a test dependency) finds in
    `folder`, as "CODE location" lines."""
    validator = Path(sys.executable).parent / "bids-validator-deno"
    done = subprocess.run(
        [str(validator), str(folder), "--format", "json"], capture_output=True, text=True
    )
    issues = json.loads(done.stdout)["issues"]["issues"]
    return [f"{i['code']} {i.get('location', '')}" for i in issues if i["severity"] == "error"]
