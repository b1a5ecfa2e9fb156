"""Peak memory of the dipmed command's tail (writing, uncertainty, report) on a large
volume, without its hours of filtering: the real CLI on the input of a `whole.py` case,
resumed from a checkpoint that holds a guided result of that shape.

`python benchmarks/tail_memory.py ct-big` prints the child's peak RSS by stage (GiB).
The result's values are a 3^3 mean of the input (memory depends on the shapes)."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import uniform_filter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import whole  # noqa: E402

from dipmed import commands  # noqa: E402
from dipmed.cli import build_parser  # noqa: E402
from dipmed.restoration.guided.settings import GuidedResult  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=whole.CASES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _, noisy, modality, *_ = whole.make_case(args.case, np.random.default_rng(0))
        nib.save(nib.Nifti1Image(noisy, np.eye(4)), folder / "degraded.nii")
        (folder / "degraded.json").write_text(json.dumps({"Modality": modality}))
        argv = [
            "denoise", str(folder / "degraded.nii"), str(folder / "restored.nii"),
            "--threads", "2", "--report", str(folder / "report"),
            "--uncertainty", str(folder / "uncertainty.nii"),
        ]  # fmt: skip
        volume, task, _, config = commands._prepare(build_parser().parse_args(argv))
        estimate = uniform_filter(noisy, 3).astype(np.float32)
        result = GuidedResult(
            estimate=estimate,
            uncertainty=np.full_like(estimate, 1.0),
            guide=estimate.copy(),
            chosen="final",
            risks={"input": 1.0, "guide": 0.11, "final": 0.1},
            losses=np.linspace(1, 0.2, 600).astype(np.float32),
        )
        checkpoint = commands._checkpoint(build_parser().parse_args(argv), volume, task, config)
        checkpoint.keep("result", result, "a result of the input's shape")
        del volume, result, estimate, noisy
        child = subprocess.Popen(
            [sys.executable, "-m", "dipmed", *argv], stderr=subprocess.PIPE, text=True
        )
        peaks, stage = {}, ["start"]

        def read():
            for line in child.stderr:
                found = re.search(r"dipmed denoise: ([a-z' ]+)", line)
                stage[0] = found.group(1).strip() if found else stage[0]

        threading.Thread(target=read, daemon=True).start()
        while child.poll() is None:
            peaks[stage[0]] = max(peaks.get(stage[0], 0.0), whole._rss_gb(child.pid))
            time.sleep(0.05)
        if child.wait() != 0:
            raise SystemExit(f"dipmed failed ({child.returncode})")
    print(json.dumps({k: round(v, 3) for k, v in peaks.items()}, indent=1))


if __name__ == "__main__":
    main()
