"""Peak RSS and seconds per epoch of `dipmed inpaint` of the whole MNI T1 in 2D mode:
all slices in one step (`fit.batch_slices` 1000) against the default bound (0: about
2^20 voxels of slices per step). `python benchmarks/steps_2d.py [--epochs 4]`; each
setting in a fresh child process, 2 threads."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = nib.load(DATA / "mri_t1_mni152_2009a_1mm.nii.gz")
        array = image.get_fdata(dtype=np.float32)
        rng, mask = np.random.default_rng(0), np.ones(array.shape, np.uint8)
        for _ in range(40):  # 40 holes of 7^3 voxels to fill
            c = [int(rng.integers(20, n - 20)) for n in array.shape]
            mask[c[0] - 3 : c[0] + 4, c[1] - 3 : c[1] + 4, c[2] - 3 : c[2] + 4] = 0
        nib.save(nib.Nifti1Image(array, image.affine), folder / "mni.nii")
        nib.save(nib.Nifti1Image(mask, image.affine), folder / "mask.nii")
        for batch in (1000, 0):
            config = folder / f"c{batch}.yaml"
            config.write_text(f"fit: {{max_iters: {args.epochs}, batch_slices: {batch}}}\n")
            command = [
                sys.executable, "-c",
                "import resource, sys; from dipmed.cli import main; code = main(sys.argv[1:]); "
                "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)",
                "inpaint", str(folder / "mni.nii"), str(folder / f"out{batch}.nii"),
                "--mask", str(folder / "mask.nii"), "--threads", "2", "--config", str(config),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            peak = int(re.search(r"peak (\d+)", done.stdout).group(1)) / 2**20
            fit = re.search(r"(\d+) iterations in ([0-9.]+)s", done.stdout)
            loss = re.findall(r"loss ([0-9.e+-]+)", done.stderr)[-1]
            print(
                f"batch_slices {batch:4d}: peak {peak:.2f} GiB, "
                f"{float(fit.group(2)) / int(fit.group(1)):.1f} s per epoch, last loss {loss}"
            )


if __name__ == "__main__":
    main()
