"""How much of the final stage's gap to its oracle is its pilot's knowledge of the noise.

`python benchmarks/pilot_dependence.py [CASES]` (run.py's denoising cases, 0-based, comma
separated; default 1,3: MNI Rician 5 % and the head CT). For each, a second noisy copy B
of the same clean crop at the same level (another draw) is denoised too, and the final
Bayes stage is run on the RESULTS.md input A (stabilised, unit noise), piloted by:

- A's own members' mean (what dipmed does) or A's own guide (what `fast` does);
- B's members' mean or B's guide: a pilot of the same quality whose errors owe nothing to
  A's noise (a second acquisition, which a user of one scan does not have);
- matched on one and its covariance from the other, to split the two parts;
- one copy's guide plus the other's members' correction (the pilot is g + f), to see
  which part carries the harm;
- the truth (the oracle: matched on it and its covariance from it).

Both copies use A's noise model, so their stabilised units agree. The pilot and the guide
are taken as the pipeline holds them (stabilised) when it drops the pilot
(`pipeline._done_with_pilot`, wrapped here). Prints one JSON row per case: true squared
errors (stabilised) of the pilots and of the stage's plain and smoother outputs. About 4
minutes for the four cases on a 2-core CPU.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import rerun_case  # noqa: E402
import run  # noqa: E402

from dipmed.config import load_config  # noqa: E402
from dipmed.restoration.guided import collaborative, pipeline  # noqa: E402
from dipmed.restoration.guided.method import denoise  # noqa: E402
from dipmed.restoration.guided.stabiliser import Stabiliser  # noqa: E402
from dipmed.restoration.noise.model import estimate_noise_model  # noqa: E402
from dipmed.restoration.runtime.context import RunContext  # noqa: E402
from dipmed.volume import Meta, Volume  # noqa: E402

_held: dict = {}
_drop = pipeline._done_with_pilot


def _keeping_pilot(members, finals, final, guide, *args):
    _held.update(pilot=members.pilot.copy(), guide=guide.copy())
    return _drop(members, finals, final, guide, *args)


def pilots(noisy, model, modality) -> tuple[np.ndarray, np.ndarray]:
    """(the members' mean, the guide) of a default run, stabilised by `model`."""
    config = load_config(None, device="cpu")
    volume = Volume(noisy, np.eye(4), Meta(modality=modality))
    pipeline._done_with_pilot = _keeping_pilot
    try:
        denoise(volume, config, RunContext(torch.device("cpu")), model=model)
    finally:
        pipeline._done_with_pilot = _drop
    return _held.pop("pilot"), _held.pop("guide")


def stage(u, match_on, covariance_from, settings=collaborative.FINAL) -> list[np.ndarray]:
    """The final stage's (plain, smoother) outputs on u, white unit noise."""
    t = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (u, match_on)]
    c = torch.from_numpy(np.ascontiguousarray(covariance_from, dtype=np.float32))
    variances = torch.full((settings.cube**3,), 1.0)
    out = collaborative._stage(t[0], t[1], variances, settings, pilot=c, report=None, model="pair")
    return [x.numpy() for x in out]


def case(index: int, cases) -> dict:
    name, clean, noisy, sigma, _, _, modality = cases[index]
    rng = np.random.default_rng(777 + index)
    other = run.add_noise(clean, sigma, "rician" if modality == "MR" else "gaussian", rng)
    model = estimate_noise_model(noisy, modality)
    u = Stabiliser(model, modality).forward(noisy)
    truth, _ = run._stabilised_truth(clean, model.sigma, modality, sigma)

    def err(x) -> float:
        return round(float(np.mean((np.asarray(x) - truth) ** 2)), 4)

    prior_a, guide_a = pilots(noisy, model, modality)
    prior_b, guide_b = pilots(other, model, modality)
    final = collaborative.FINAL
    fast = replace(final, step=final.step_guide_bayes)
    runs = {
        "members A": (prior_a, prior_a, final),
        "members B": (prior_b, prior_b, final),
        "matched A, covariance B": (prior_a, prior_b, final),
        "matched B, covariance A": (prior_b, prior_a, final),
        "guide B + members' correction A": (guide_b + prior_a - guide_a,) * 2 + (final,),
        "guide A + members' correction B": (guide_a + prior_b - guide_b,) * 2 + (final,),
        "guide A (fast)": (guide_a, guide_a, fast),
        "guide B (fast)": (guide_b, guide_b, fast),
        "truth": (truth, truth, final),
    }
    row = {"case": name, "pilot error": {
        "members A": err(prior_a), "members B": err(prior_b),
        "guide A": err(guide_a), "guide B": err(guide_b),
    }}  # fmt: skip
    for key, (match_on, covariance_from, settings) in runs.items():
        row[key] = [err(x) for x in stage(u, match_on, covariance_from, settings)]
    return row


def main() -> None:
    torch.set_num_threads(2)
    wanted = [int(c) for c in (sys.argv[1] if len(sys.argv) > 1 else "1,3").split(",")]
    cases, _ = rerun_case.inputs(HERE.parent.parent / "shared" / "data", run.SIZES["small"])
    for index in wanted:
        print(json.dumps(case(index, cases)), flush=True)


if __name__ == "__main__":
    main()
