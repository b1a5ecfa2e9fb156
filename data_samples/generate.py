"""Regenerate data_samples/ deterministically: `python data_samples/generate.py [FOLDER]`.

Writes two small noisy phantoms (synthetic, no patient data, public domain):
- sub-phantom01_T1w.nii.gz: T1-like MR head phantom, 64x64x40 at 1x1x1.5 mm,
  Rician noise with sigma 5% of the maximum, oblique-free RAS affine.
- ct_phantom/: a CT head phantom as a one-file-per-slice DICOM series, 48x48x24 at
  0.9x0.9x2.5 mm, Gaussian noise (sigma 20 HU), stored with RescaleIntercept -1024,
  in LPS with a synthetic patient ("DOE^JOHN") so identifier handling can be checked.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.uid import generate_uid

from dipmed.io.dicom_template import classic_template
from dipmed.io.dicom_write import write_new_series
from dipmed.phantom import add_rician_noise, ct_phantom, mr_phantom
from dipmed.volume import Volume

HERE = Path(__file__).resolve().parent
SEED = 20261124


def make_mr(rng: np.random.Generator, folder: Path) -> None:
    clean = mr_phantom((64, 64, 40))
    noisy = add_rician_noise(clean, 0.05 * float(clean.max()), rng)
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    affine[:3, 3] = [-31.5, -40.0, -30.0]
    image = nib.Nifti1Image(np.round(noisy).astype(np.int16), affine)
    image.set_sform(affine, 1)
    image.set_qform(affine, 1)
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, folder / "sub-phantom01_T1w.nii.gz")


def make_ct(rng: np.random.Generator, folder: Path) -> None:
    clean = ct_phantom((48, 48, 24))
    noisy = np.round(clean + rng.normal(0.0, 20.0, clean.shape)).clip(-1024, 3071)
    affine = np.diag([-0.9, -0.9, 2.5, 1.0])  # RAS affine of an LPS-ordered axial stack
    affine[:3, 3] = [21.15, 21.15, -30.0]
    template = classic_template("CT")
    template.PatientName, template.PatientID = "DOE^JOHN", "DIPMED-SAMPLE-01"
    template.PatientBirthDate, template.SeriesDescription = "19700101", "CT head phantom"
    template.StudyInstanceUID = generate_uid(entropy_srcs=["dipmed-sample-study"])
    template.SeriesInstanceUID = generate_uid(entropy_srcs=["dipmed-sample-ct-series"])
    template.FrameOfReferenceUID = generate_uid(entropy_srcs=["dipmed-sample-for"])
    template.StudyDate, template.StudyTime, template.StudyID = "20261124", "120000", "1"
    template.KVP, template.SliceThickness = "120", "2.5"
    template.WindowCenter, template.WindowWidth = "40", "80"
    target = folder / "ct_phantom"
    shutil.rmtree(target, ignore_errors=True)
    write_new_series(Volume(noisy, affine), target, template=template, rescale=(1.0, -1024.0))


def generate(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(SEED)
    make_mr(generator, folder)
    make_ct(generator, folder)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    generate(out)
    print(f"wrote samples to {out}")
