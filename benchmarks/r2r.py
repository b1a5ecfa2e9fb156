"""A Recorrupted-to-Recorrupted member (Pang et al., CVPR 2021) on one of run.py's crops.

`python benchmarks/r2r.py [CASE] [ALPHA] [K] [STEPS] [LR] [SEED]` (defaults 1 0.5 8 150
1e-3 0; SEED draws the recorruptions and the network's weights). K = 0: a fresh
recorruption (and its guide) at every step, so no target is seen twice.
In stabilised units (unit white noise) u = x + n; with z_k ~ N(0, 1), the input
y_k = u + ALPHA z_k and the target t_k = u - z_k / ALPHA have independent noises, so
E|m(y_k) - t_k|^2 = E|m(y_k) - x|^2 + const: the loss rewards no fitting of the noise
(in expectation over z). The member m(y_k) = g_k + f(y_k), g_k the collaborative guide of
y_k (noise variance 1 + ALPHA^2), f the BasicUNet `guided` fits; K recorruptions drawn
once (a guide each), cycled over the steps. Prints JSON rows: the guide's and the final
stage's true errors, then per 30 steps the member's (the mean over the K recorruptions,
and f applied to u beside the guide of u) and, at the end, the final stage piloted by it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import members  # noqa: E402
import rerun_case  # noqa: E402
import run  # noqa: E402

from dipmed.restoration.guided import collaborative  # noqa: E402
from dipmed.restoration.guided.ensemble import member_roles  # noqa: E402
from dipmed.restoration.guided.member import IGNORED  # noqa: E402
from dipmed.restoration.guided.stabiliser import Stabiliser, coefficient_variances  # noqa: E402
from dipmed.restoration.noise.model import estimate_noise_model  # noqa: E402


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, np.float32))[None, None]


def main() -> None:
    case, alpha, count, steps, lr, seed = (
        int(sys.argv[1]) if len(sys.argv) > 1 else 1,
        float(sys.argv[2]) if len(sys.argv) > 2 else 0.5,
        int(sys.argv[3]) if len(sys.argv) > 3 else 8,
        int(sys.argv[4]) if len(sys.argv) > 4 else 150,
        float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3,
        int(sys.argv[6]) if len(sys.argv) > 6 else 0,
    )
    torch.set_num_threads(2)
    start = time.time()
    cases, _ = rerun_case.inputs(HERE.parent.parent / "shared" / "data", run.SIZES["small"])
    _, clean, noisy, sigma_true, _, _, modality = cases[case]
    model = estimate_noise_model(noisy, modality)
    stabiliser = Stabiliser(model, modality)
    u = stabiliser.forward(noisy).astype(np.float32)
    variances = coefficient_variances(model)
    guide = collaborative.denoise(u, variances)
    target, _ = run._stabilised_truth(clean, model.sigma, modality, sigma_true)
    keep = member_roles(guide, stabiliser, model, 0) != IGNORED

    def error(estimate) -> float:
        return round(float(np.mean((estimate - target)[keep] ** 2)), 4)

    rng = np.random.default_rng(seed)
    zs = [rng.standard_normal(u.shape).astype(np.float32) for _ in range(count)]
    inputs = [u + alpha * z for z in zs]
    guides = [collaborative.denoise(y, variances * (1 + alpha**2)) for y in inputs]
    head = {"case": case, "alpha": alpha, "K": count, "guide": error(guide)}
    if count:
        head["mean_recorrupted_guides"] = error(np.mean(guides, axis=0))
    head["final_by_guide"] = error(collaborative.bayes(u, guide, variances))
    print(json.dumps(head | {"setup_s": round(time.time() - start, 1)}), flush=True)
    mask = _tensor(keep)
    ys, gs = [_tensor(y) for y in inputs], [_tensor(g) for g in guides]
    targets = [_tensor(u - z / alpha) for z in zs]

    def pair(step: int):
        """The step's (input, its guide, target): stored, or drawn afresh (K = 0)."""
        if count:
            k = step % count
            return ys[k], gs[k], targets[k]
        z = rng.standard_normal(u.shape).astype(np.float32)
        y = u + alpha * z
        g = collaborative.denoise(y, variances * (1 + alpha**2))
        return _tensor(y), _tensor(g), _tensor(u - z / alpha)

    net, correction = members.generator(_tensor(u), seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for step in range(1, steps + 1):
        y, g, t = pair(step)
        loss = (((g + correction(y) - t) ** 2) * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 30 and step != steps:
            continue
        with torch.no_grad():
            on_u = (_tensor(guide) + correction(_tensor(u)))[0, 0].numpy()
            members_out = [(g + correction(y))[0, 0].numpy() for g, y in zip(gs, ys, strict=True)]
            if not count:  # the mean over 4 fresh recorruptions (their own draws)
                members_out = [(g + correction(y))[0, 0].numpy() for y, g, _ in map(pair, range(4))]
            mean = np.mean(members_out, axis=0)
        row = {"step": step, "loss": round(float(loss.detach()), 4)}
        row |= {"member_mean_recorrupted": error(mean), "member_on_u": error(on_u)}
        if step == steps:
            row["final_by_member"] = error(collaborative.bayes(u, mean, variances))
            row["final_by_member_on_u"] = error(collaborative.bayes(u, on_u, variances))
        print(json.dumps(row | {"s": round(time.time() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
