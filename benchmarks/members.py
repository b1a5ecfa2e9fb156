"""A deep-prior member's training objective beside its true squared error, per step.

`python benchmarks/members.py [--case N] [--steps S] [--variant half|whole|patches]` on one
of run.py's denoising crops (same noise draws). The member is the one `guided` fits
(x = g + f(u), f a BasicUNet seeing u, Monte-Carlo SURE at fixed weights), with the
guide g computed as dipmed does. Variants:
- half (what `guided` does on a crop): the SURE on a fixed random half of the voxels,
  the other half held out (its SURE and true error logged: a risk the training never saw),
  MR air (the guide below 2 sigma) in neither;
- whole: the SURE on every voxel but MR air (what `guided` did before 2026-12-04, air in);
- patches: one random 32^3 patch, randomly flipped, per step; weights averaged (0.99).
Every SURE here includes the guide's divergence (one finite difference through the whole
guide, as `guided` does), so it estimates the same number as the true squared error
beside it (against the exact stabilised truth, run._stabilised_truth). Logged per step:
the trained and held-out halves' SURE and true error of the iterate, and of the 0.99
average (what the member returns; its divergence: the average of the steps'). Prints
one JSON row per logged step. The SURE here is white noise's (probe b, not S b): the
correlated case (4) is not served by this harness.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import rerun_case  # noqa: E402
import run  # noqa: E402

from dipmed.restoration.guided import collaborative  # noqa: E402
from dipmed.restoration.guided.ensemble import member_roles  # noqa: E402
from dipmed.restoration.guided.member import HELD_OUT, IGNORED, TRAINED  # noqa: E402
from dipmed.restoration.guided.risk import EPSILON as _EPSILON_GUIDE  # noqa: E402
from dipmed.restoration.guided.risk import probe as _probe  # noqa: E402
from dipmed.restoration.guided.stabiliser import Stabiliser as _Stabiliser  # noqa: E402
from dipmed.restoration.guided.stabiliser import (  # noqa: E402
    coefficient_variances as _coefficient_variances,
)
from dipmed.restoration.networks import NetworkConfig, build_generator, padded_size  # noqa: E402
from dipmed.restoration.noise.model import estimate_noise_model  # noqa: E402


def crop(index: int):
    """(u, guide, stabilised truth, the guide's per-voxel divergence terms b (g(u + 0.2 b) -
    g(u)) / 0.2, the voxels' roles in the members' SURE as `guided` sets them: MR air in
    neither half) of run.py's denoising case `index`, as tensors of shape (1, 1, ...)."""
    cases, _ = rerun_case.inputs(HERE.parent.parent / "shared" / "data", run.SIZES["small"])
    _, clean, noisy, sigma_true, _, _, modality = cases[index]
    model = estimate_noise_model(noisy, modality)
    stabiliser = _Stabiliser(model, modality)
    u = stabiliser.forward(noisy)
    variances = _coefficient_variances(model)
    guide = collaborative.denoise(u, variances)
    b = _probe(u.shape)
    divergence = b * (collaborative.denoise(u + _EPSILON_GUIDE * b, variances) - guide)
    divergence /= _EPSILON_GUIDE
    target, _ = run._stabilised_truth(clean, model.sigma, modality, sigma_true)
    arrays = (u, guide, target, divergence, member_roles(guide, stabiliser, model, 0))
    return (torch.from_numpy(np.asarray(a, np.float32))[None, None] for a in arrays)


def generator(u: torch.Tensor, seed: int):
    """The member's network and its correction f(.), as `member.fit_member` builds them."""
    torch.manual_seed(seed)
    config = replace(NetworkConfig(), input_channels=1, norm="instance")
    net = build_generator(3, config)
    with torch.no_grad():
        net.final_conv.weight.mul_(1e-3)
        net.final_conv.bias.zero_()
    scale = float(u.abs().max())

    def correction(x):
        shape = x.shape[2:]
        pads = [p for n in reversed(shape) for p in (0, padded_size(n) - n)]
        out = net(F.pad(x / scale, pads, mode="replicate"))
        return scale * out[..., : shape[0], : shape[1], : shape[2]]

    return net, correction


def sample(u, g, mask, variant, rng):
    """The step's (u, g, mask) view: the whole crop, or a random flipped 32^3 patch."""
    if variant != "patches":
        return u, g, mask
    where = [slice(None)] * 2
    for n in u.shape[2:]:
        side = min(32, n)
        start = int(torch.randint(0, n - side + 1, (1,), generator=rng))
        where.append(slice(start, start + side))
    dims = [2 + d for d in range(3) if torch.rand(1, generator=rng) < 0.5]
    views = [t[tuple(where)] for t in (u, g, mask)]
    return [t.flip(dims) if dims else t for t in views]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=int, default=1, help="run.py's denoising case (1: 5 %)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=15)
    parser.add_argument("--variant", choices=("half", "whole", "patches"), default="half")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    u, g, target, guide_div, roles = crop(args.case)
    held = (roles == HELD_OUT).float()
    train = (roles == TRAINED).float() if args.variant == "half" else (roles != IGNORED).float()
    net, correction = generator(u, 0)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    rng = torch.Generator().manual_seed(0)
    averaged = [p.detach().clone() for p in net.parameters()]
    ema, ema_div = torch.zeros_like(u), torch.zeros_like(u)
    halves = {"trained": train, "held_out": held if args.variant == "half" else train}
    print(json.dumps(_row(0, u, g, target, guide_div, guide_div, g, halves)), flush=True)
    for step in range(1, args.steps + 1):
        uu, gg, mm = sample(u, g, train, args.variant, rng)
        b = torch.randn(uu.shape, generator=rng)
        x, moved = gg + correction(uu), gg + correction(uu + 0.1 * b)
        terms = (uu - x) ** 2 - 1 + 2 * b * (moved - x) / 0.1
        loss = (terms * mm).sum() / mm.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for a, p in zip(averaged, net.parameters(), strict=True):
                a.lerp_(p, 0.01)
            if args.variant != "patches":
                ema.lerp_(x, 0.01)
                ema_div.lerp_(b * (moved - x) / 0.1, 0.01)
        if step % args.every and step != args.steps:
            continue
        with torch.no_grad():
            if args.variant == "patches":  # the averaged weights' output, whole crop
                now = [p.detach().clone() for p in net.parameters()]
                for p, a in zip(net.parameters(), averaged, strict=True):
                    p.copy_(a)
                average, average_div = g + correction(u), None
                for p, a in zip(net.parameters(), now, strict=True):
                    p.copy_(a)
            else:
                debias = 1 - 0.99**step
                average, average_div = ema / debias, guide_div + ema_div / debias
            if args.variant == "patches":  # the iterate's divergence on the whole crop
                b = torch.randn(u.shape, generator=rng)
                x, moved = g + correction(u), g + correction(u + 0.1 * b)
            row = _row(
                step,
                u,
                g,
                target,
                guide_div + b * (moved - x) / 0.1,
                average_div,
                x,
                halves,
                average=average,
            )
        print(json.dumps(row), flush=True)


def _row(step, u, g, target, divergence, average_div, x, halves, average=None) -> dict:
    """The logged step: SURE and true error of the iterate (and of the average) per half."""

    def mean(v, m):
        return round(float((v * m).sum() / m.sum()), 4)

    row = {"step": step}
    for name, m in halves.items():
        row[f"sure_{name}"] = mean((u - x) ** 2 - 1 + 2 * divergence, m)
        row[f"true_{name}"] = mean((x - target) ** 2, m)
    if average is not None:
        row["true_average"] = mean((average - target) ** 2, halves["held_out"])
        if average_div is not None:
            held = halves["held_out"]
            row["sure_average_held_out"] = mean((u - average) ** 2 - 1 + 2 * average_div, held)
    return row


if __name__ == "__main__":
    main()
