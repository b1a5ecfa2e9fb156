"""Re-run one denoising case of a preset and put it into results-<size>.json (same input:
the noise draws of run.py are replayed in order). `python benchmarks/rerun_case.py N`,
N the case's index (0-based) among run.py's denoising cases."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import run  # noqa: E402
from run import SIZES, crop_centre, denoise_case, denoise_inputs, plant_lesion  # noqa: E402


def inputs(data: Path, preset: dict):
    """run.py's denoising cases, with its noise draws replayed in order."""
    mni = nib.load(data / "mri_t1_mni152_2009a_1mm.nii.gz").get_fdata(dtype=np.float32)
    mni = (mni / mni.max()).astype(np.float32)
    clean = crop_centre(mni, preset["crop"]).astype(np.float32)
    ct = nib.load(data / "ct_head_0051.nii.gz").get_fdata(dtype=np.float32)
    ct_clean = crop_centre(ct, preset["crop"]).astype(np.float32)
    return denoise_inputs(mni, clean, ct_clean, preset, np.random.default_rng(2026)), clean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=int)
    parser.add_argument("--size", default="small")
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bm4d-guide", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases, clean = inputs(args.data, SIZES[args.size])
    name, *case = cases[args.index]
    extra = (plant_lesion(clean)[1],) if "lesion" in name else ()
    result = denoise_case(name, *case, args, extra=extra)
    path = HERE / f"results-{args.size}.json"
    report = json.loads(path.read_text())
    result["rerun"] = "re-run alone after a fix (same input, same machine)"
    report["cases"] = [result if c["case"] == name else c for c in report["cases"]]
    path.write_text(json.dumps(report, indent=1))
    from results_md import write_results

    write_results(HERE)


if __name__ == "__main__":
    run.GUIDED_OVERRIDES.clear()
    main()
