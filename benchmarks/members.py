"""A deep-prior member's training objective beside its true squared error, per step.

`python benchmarks/members.py [--case N] [--steps S] [--variant whole|half|patches]` on one
of run.py's denoising crops (same noise draws). The member is the one `guided` fits
(x = g + f(u), f a BasicUNet seeing u, Monte-Carlo SURE at fixed weights), with the
guide g computed as dipmed does. Variants:
- whole: the whole crop every step (what `guided` does on a crop);
- half: the SURE on a random half of the voxels only, the other half held out (its SURE
  and true error logged: a risk the training never saw);
- patches: one random 32^3 patch, randomly flipped, per step; weights averaged (0.99).
The objective omits the guide's divergence (a constant for the weights), so it sits below
the true risk by that constant; what matters is whether it keeps falling while the true
error rises (memorising the noise). Prints one JSON row per logged step.
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

from dipmed.restoration import collaborative  # noqa: E402
from dipmed.restoration.guided import _coefficient_variances, _Stabiliser  # noqa: E402
from dipmed.restoration.networks import NetworkConfig, build_generator, padded_size  # noqa: E402
from dipmed.restoration.noise_model import estimate_noise_model  # noqa: E402


def crop(index: int):
    """(u, guide, stabilised truth) of run.py's denoising case `index`."""
    cases, _ = rerun_case.inputs(HERE.parent.parent / "shared" / "data", run.SIZES["small"])
    _, clean, noisy, sigma_true, _, _, modality = cases[index]
    model = estimate_noise_model(noisy, modality)
    stabiliser = _Stabiliser(model, modality)
    u = stabiliser.forward(noisy)
    guide = collaborative.denoise(u, _coefficient_variances(model))
    target, _ = run._stabilised_truth(clean, model.sigma, modality, sigma_true)
    return (torch.from_numpy(np.asarray(a, np.float32))[None, None] for a in (u, guide, target))


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
    parser.add_argument("--variant", choices=("whole", "half", "patches"), default="whole")
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    u, g, target = crop(args.case)
    held_rng = np.random.default_rng(5)
    train = torch.ones_like(u)
    if args.variant == "half":
        train = torch.from_numpy((held_rng.random(u.shape) < 0.5).astype(np.float32))
    net, correction = generator(u, 0)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    rng = torch.Generator().manual_seed(0)
    averaged = [p.detach().clone() for p in net.parameters()]
    ema = torch.zeros_like(u)
    print(json.dumps({"guide_true": float(((g - target) ** 2).mean())}), flush=True)
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
        if step % args.every and step != args.steps:
            continue
        row = _row(step, loss, u, g, target, x, ema, train, args, net, averaged, correction)
        print(json.dumps(row), flush=True)


def _row(step, loss, u, g, target, x, ema, train, args, net, averaged, correction) -> dict:
    """The logged step: objective, true error of the iterate and of the average."""
    with torch.no_grad():
        if args.variant == "patches":  # the output of the averaged weights, whole crop
            now = [p.detach().clone() for p in net.parameters()]
            for p, a in zip(net.parameters(), averaged, strict=True):
                p.copy_(a)
            average = g + correction(u)
            for p, a in zip(net.parameters(), now, strict=True):
                p.copy_(a)
        else:
            average = ema / (1 - 0.99**step)
        err = lambda v, m: float((((v - target) ** 2) * m).sum() / m.sum())  # noqa: E731
        row = {"step": step, "objective": round(float(loss), 4)}
        row["true_iterate"] = round(err(x.detach(), train), 4)
        row["true_average"] = round(err(average, torch.ones_like(u)), 4)
        if args.variant == "half":
            row["true_held_out"] = round(err(x.detach(), 1 - train), 4)
        return row


if __name__ == "__main__":
    main()
