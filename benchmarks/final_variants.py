"""The final Bayes stage against a smoother variant of it, each with its SURE.

`python benchmarks/final_variants.py [--cases 0,1,2,3]` runs `dipmed denoise` at its
default settings (own noise estimate) on run.py's denoising crops (same noise draws) and,
beside the final stage it returns, runs the smoother variant on the same pilot: every
group's estimate weighted alike in the aggregation (as the member is trained) and the
pilot's covariance scaled by `--scale` (0.8). Each gets its SURE as the engine computes
it (the pilot moved along the shared probe; the noise variance the engine read). Prints
one JSON row per crop: true squared error and SURE (stabilised units) of both, and of the
guide: whether SURE picks the better one (benchmarks/README.md, issue 22, tenth session).
The variant reaches the engine by replacing `collaborative._gaussian` during its passes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import rerun_case  # noqa: E402
import run  # noqa: E402

from dipmed.restoration.guided import collaborative, pipeline  # noqa: E402
from dipmed.restoration.guided.risk import final_sure_terms  # noqa: E402

_GAUSSIAN = collaborative._gaussian


def _smoother(scale: float):
    """`collaborative._gaussian` with the pilot's covariance times `scale` and flat weights."""

    def gaussian(groups, pilots, noise, white=None):
        cubes, weight = _GAUSSIAN(groups, pilots * float(np.sqrt(scale)), noise, white)
        return cubes, torch.ones_like(weight)  # centring commutes with the scale

    return gaussian


def _capturing(seen: dict, scale: float):
    """`pipeline._final_stage`, plus the smoother variant and its SURE terms on the side."""
    stage = pipeline._final_stage

    def final_stage(u, members, pilot_change, variances, model, context, clock):
        pilot = members.pilot.copy()
        final, terms = stage(u, members, pilot_change, variances, model, context, clock)
        collaborative._gaussian = _smoother(scale)  # pilot_change is now p + dp
        try:
            smooth = collaborative.bayes(u, pilot, variances)
            smooth_terms = final_sure_terms(u, smooth, variances, model, pilot_change)
        finally:
            collaborative._gaussian = _GAUSSIAN
        seen.update(
            final=final.copy(),
            final_sure=float(terms.mean(dtype=np.float64)),
            smooth=smooth,
            smooth_sure=float(smooth_terms.mean(dtype=np.float64)),
            v=model.stabilised_variance,
        )
        return final, terms

    return final_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="0,1,2,3")
    parser.add_argument("--scale", type=float, default=0.8)
    parser.add_argument("--size", default="small")
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cases, _ = rerun_case.inputs(args.data, run.SIZES[args.size])
    seen: dict = {}
    pipeline._final_stage = _capturing(seen, args.scale)
    for index in (int(c) for c in args.cases.split(",")):
        name, clean, noisy, sigma, data_range, _, modality = cases[index]
        r = run.run_guided(noisy, clean, data_range, modality, "cpu", sigma)
        target, _ = run._stabilised_truth(clean, r["sigma_estimated"], modality, sigma)
        true = {k: float(np.mean((seen[k] - target) ** 2)) for k in ("final", "smooth")}
        row = {
            "case": name,
            "v": round(seen["v"], 4),
            "guide": [round(r["true_risk"]["guide"], 4), round(r["sure"]["guide"], 4)],
            "final": [round(true["final"], 4), round(seen["final_sure"], 4)],
            "smooth": [round(true["smooth"], 4), round(seen["smooth_sure"], 4)],
            "sure_picks": "smooth" if seen["smooth_sure"] < seen["final_sure"] else "final",
            "better": "smooth" if true["smooth"] < true["final"] else "final",
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
