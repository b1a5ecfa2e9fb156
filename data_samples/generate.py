"""Regenerate data_samples/ deterministically: `python data_samples/generate.py [FOLDER]`.

Every sample is a crop of a real volume (sources and licences: data_samples/README.md), and
the folder is a small BIDS dataset (what `dipmed bids` reads; the DICOM CT and this script
are listed in its .bidsignore):
- sub-01/anat/sub-01_T1w.nii.gz: 72x72x40 voxels (1 mm) of the ICBM152 2009a T1 template
  (cortex, white matter, a lateral ventricle, some air), scaled to 0..1000, Rician noise
  with sigma 4 % of the maximum (as a fast 3 T T1 scan), int16, RAS.
- sub-01/anat/sub-01_acq-thick_T1w.nii.gz: another crop of the template with 2 mm slices
  (pairs of 1 mm slices averaged: what a thick-slice acquisition records), 64x64x20,
  Rician noise 2 %.
- ct_abdomen/: 72x64x24 voxels (3 mm) of a real abdominal CT (TotalSegmentator's example),
  Gaussian noise of 25 HU added (a low-dose scan), as a one-file-per-slice CT DICOM series
  with RescaleIntercept -1024 and a synthetic patient ("DOE^JOHN"), so that identifier
  handling can be checked.

The sources come from PyPI, pinned by version and SHA-256: the nilearn wheel (the template)
and the TotalSegmentator source archive (the CT), fetched once with pip into a cache folder
(DIPMED_SAMPLES_CACHE, default ~/.cache/dipmed-samples).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.uid import generate_uid

from dipmed.io.dicom_template import classic_template
from dipmed.io.dicom_write import write_new_series
from dipmed.phantom import add_rician_noise
from dipmed.volume import Volume

HERE = Path(__file__).resolve().parent
SEED = 20261204
# (package, version, archive, its SHA-256, the member, its SHA-256)
MNI = (
    "nilearn",
    "0.14.1",
    "nilearn-0.14.1-py3-none-any.whl",
    "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a",
    "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
)
CT = (
    "totalsegmentator",
    "2.18.0",
    "totalsegmentator-2.18.0.tar.gz",
    "5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03",
    "totalsegmentator-2.18.0/tests/reference_files/example_ct_sm.nii.gz",
    "e50c00b2914e2cac0aaee8e7f3b5f57d44d9f21bfd5c0577271c54c0cb49e9fb",
)
IGNORED = ("/generate.py", "/ct_abdomen")  # in the folder, not named by BIDS
SCALE = 1000.0 / 255.0  # template uint8 0..255 -> 0..1000


def cache_folder() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dipmed-samples"
    return Path(os.environ.get("DIPMED_SAMPLES_CACHE", default))


def source(pinned: tuple[str, ...]) -> nib.Nifti1Image:
    """A pinned NIfTI file out of a pinned PyPI archive (downloaded once into the cache)."""
    name, version, archive, archive_sha, member, member_sha = pinned
    path = cache_folder() / archive
    if not path.is_file() or _sha256(path.read_bytes()) != archive_sha:
        path.parent.mkdir(parents=True, exist_ok=True)
        binary = ["--only-binary" if archive.endswith(".whl") else "--no-binary", ":all:"]
        command = [sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps"]
        subprocess.run([*command, *binary, "--dest", str(path.parent), "--quiet"], check=True)
    if _sha256(path.read_bytes()) != archive_sha:
        raise SystemExit(f"{path} does not have the pinned SHA-256; delete it and rerun")
    if archive.endswith(".whl"):
        data = zipfile.ZipFile(path).read(member)
    else:
        with tarfile.open(path) as tar:
            data = tar.extractfile(member).read()
    if _sha256(data) != member_sha:
        raise SystemExit(f"{member} in {path} differs from the pinned file")
    return nib.Nifti1Image.from_bytes(gzip.decompress(data))


def make_mr(image: nib.Nifti1Image, rng: np.random.Generator, anat: Path) -> None:
    box = (slice(30, 102), slice(96, 168), slice(78, 118))
    clean = np.asarray(image.dataobj, dtype=np.float64)[box] * SCALE
    noisy = add_rician_noise(clean, 0.04 * 1000.0, rng)
    _save_t1w(np.round(noisy), _cropped(image.affine, box), anat / "sub-01_T1w.nii.gz")


def make_thick(image: nib.Nifti1Image, rng: np.random.Generator, anat: Path) -> None:
    box = (slice(112, 176), slice(70, 134), slice(70, 110))
    clean = np.asarray(image.dataobj, dtype=np.float64)[box] * SCALE
    thick = clean.reshape(64, 64, 20, 2).mean(axis=3)  # 2 mm slices from 1 mm ones
    noisy = np.round(add_rician_noise(thick, 0.02 * 1000.0, rng))
    affine = _cropped(image.affine, box) @ np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] += affine[:3, 2] / 4  # a 2 mm slice's centre: between its 1 mm slices
    _save_t1w(noisy, affine, anat / "sub-01_acq-thick_T1w.nii.gz")


def make_ct(image: nib.Nifti1Image, rng: np.random.Generator, folder: Path) -> None:
    box = (slice(25, 97), slice(20, 84), slice(3, 27))
    clean = np.asarray(image.dataobj, dtype=np.float64)[box]
    noisy = np.round(clean + rng.normal(0.0, 25.0, clean.shape)).clip(-1024, 3071)
    template = classic_template("CT")
    template.PatientName, template.PatientID = "DOE^JOHN", "DIPMED-SAMPLE-01"
    template.PatientBirthDate, template.SeriesDescription = "19700101", "CT abdomen"
    template.StudyInstanceUID = generate_uid(entropy_srcs=["dipmed-sample-study"])
    template.SeriesInstanceUID = generate_uid(entropy_srcs=["dipmed-sample-ct-series"])
    template.FrameOfReferenceUID = generate_uid(entropy_srcs=["dipmed-sample-for"])
    template.StudyDate, template.StudyTime, template.StudyID = "20261204", "120000", "1"
    template.KVP, template.SliceThickness = "120", "3"
    template.WindowCenter, template.WindowWidth = "40", "400"
    target = folder / "ct_abdomen"
    shutil.rmtree(target, ignore_errors=True)
    volume = Volume(noisy, _cropped(image.affine, box))
    write_new_series(volume, target, template=template, rescale=(1.0, -1024.0))


def generate(folder: Path) -> None:
    """The samples, and the files that make `folder` a BIDS dataset."""
    anat = folder / "sub-01" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(SEED)
    template = source(MNI)
    make_mr(template, generator, anat)
    make_thick(template, generator, anat)
    make_ct(source(CT), generator, folder)
    description = {"Name": "dipmed samples", "BIDSVersion": "1.10.0", "DatasetType": "raw"}
    description["License"] = "see README.md (MNI template notice; Apache-2.0)"
    (folder / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")
    (folder / ".bidsignore").write_text("".join(f"{name}\n" for name in IGNORED))


def _save_t1w(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """An int16 NIfTI in mm with its BIDS sidecar (the template is skull-stripped)."""
    image = nib.Nifti1Image(array.astype(np.int16), affine)
    image.set_sform(affine, 1)
    image.set_qform(affine, 1)
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, path)
    sidecar = {"Modality": "MR", "SkullStripped": True}
    path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar) + "\n")


def _cropped(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ [s.start for s in box] + affine[:3, 3]
    return shifted


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    generate(out)
    print(f"wrote samples to {out}")
