"""The deep-prior members of guided denoising, fitted one after another (each resumable
and kept in the checkpoint when done): their mean pilots the final stage, their spread
adds to the uncertainty.

Recorrupted members are trained through the final stage, which reads its pilot's cubes
less their group's mean: the pilot's local mean is in no loss, and it drifts (on the
whole MNI at 5 % the members' mean stood about 1.2 noise stds above the truth in the
brain, 24.1 dB there against the guide's 36.9, its SURE 1.56 against the input's 1).
Their mean is anchored to the guide's local mean (`anchored`): x - G * (x - g), G a
Gaussian of `ANCHOR_VOX`. The members' mean is then a fair image (the whole MNI's brain
35.8 dB, SURE 0.14) and its risk an honest one; the stage it pilots moved by +0.01 dB
there and by at most 0.0001 on the benchmark crops (benchmarks/README.md, issue 22,
seventeenth session)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from dipmed.restoration.guided.member import IGNORED, fit_member, held_out_half
from dipmed.restoration.guided.recorrupted import fit_recorrupted_member
from dipmed.restoration.guided.risk import EPSILON, counted_voxels, probe
from dipmed.restoration.guided.stabiliser import Stabiliser
from dipmed.restoration.noise.model import NoiseModel
from dipmed.restoration.runtime.events import Progress

_FLIPS = ((), (0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2))
ANCHOR_VOX = 2.0  # Gaussian width (voxels) of the local mean recorrupted members take
# from the guide (2 left the crops' final stage as it was; 1 moved it by up to 0.0005)


@dataclass
class Members:
    """The members' outcome: their mean (the final stage's pilot), its change along the
    probe, its held-out risk, the spread, and each member's loss curve."""

    pilot: np.ndarray | None = None
    change: np.ndarray | None = None  # the members' own change along the probe (mean)
    divergence: np.ndarray | None = None  # fitted whole: their steps' divergence terms (mean)
    risk: float | None = None
    spread: np.ndarray | None = None
    curves: list | None = None
    roles: np.ndarray | None = None  # each voxel's role in the members' loss and risk


def fit_members(u, guide, stabiliser, model, settings, network, seed, context) -> Members:
    """Fit the members (or take them from the checkpoint); their mean, change, spread."""
    count = settings.members if settings.fits_members else 0
    out = Members(curves=[])
    if not count:
        return out
    roles = member_roles(guide, stabiliser, model, seed)
    members, fit_at = [], time.perf_counter()  # the steps' ETA counts from here
    for m in range(count):
        member, change, curve, divergence = _member(
            m, u, guide, roles, model, settings, network, seed, context, fit_at
        )
        members.append(member)
        if out.change is None:
            out.change = change
        else:
            out.change += change  # in place: one whole-volume array less at the peak
        if divergence is not None:  # fitted whole (a small volume): the average's own
            out.divergence = divergence if out.divergence is None else out.divergence + divergence
        out.curves.append(curve)
        del member, change, divergence
    out.pilot = _mean(members)
    out.change /= len(members)
    if out.divergence is not None:
        out.divergence /= len(members)
    out.roles = roles
    if settings.member == "recorrupted":
        anchored(out, guide)
    # one member: the spread of the pair it and the guide, the estimators the final stage saw;
    # recorrupted members are pilots, not estimates: the pipeline takes (final, guide) instead
    if settings.member != "recorrupted":
        out.spread = spread(members if len(members) > 1 else [*members, guide], stabiliser.inverse)
    return out


def anchored(members: Members, guide: np.ndarray) -> None:
    """The members' mean given the guide's local mean, in place: x - G * (x - g), and its
    change along the probe the same, dx - G * dx (the guide's own change is the final
    stage's to add). G is linear, so the final stage's SURE still sees every term that
    moves with u; the members' divergence terms (fitted whole) lose G's centre weight,
    under 1 %, and are left as they are."""
    offset = np.subtract(members.pilot, guide, dtype=np.float32)
    members.pilot -= gaussian_filter(offset, ANCHOR_VOX, output=offset)
    del offset
    members.change -= gaussian_filter(members.change, ANCHOR_VOX)


def member_roles(
    guide: np.ndarray, stabiliser: Stabiliser, model: NoiseModel, seed: int
) -> np.ndarray:
    """Each voxel's role in the members' SURE: a random half held out (no member trains
    on it; the members' risk is read there) and the voxels no risk counts
    (`risk.counted_voxels`: for MR with white noise, the dark ones) in neither.

    In the dark voxels a network trained on SURE learns to exploit its bias on every
    voxel (both halves' SURE fell to -1.5 on `make run`'s MR phantom).
    """
    roles = held_out_half(guide.shape, seed)
    counted = counted_voxels(guide, stabiliser, model)
    if counted is not None:
        roles[~counted] = IGNORED
    return roles


def _member(m, u, guide, roles, model, settings, network, seed, context, fit_at):
    """Member m: taken from the checkpoint, or fitted (resumed from its saved state when
    there is one) and then kept there."""
    key, checkpoint = f"member{m}", context.checkpoint
    done = checkpoint.get(key)
    if done is not None:
        context.stage(f"member {m + 1} of {settings.members}: taken from the checkpoint")
        return done
    state = checkpoint.get(f"{key}-fit")
    if state is not None:
        context.stage(f"member {m + 1} of {settings.members}: resuming from step {state['step']}")
    del state
    total = settings.members * settings.iterations

    def told(i, loss):
        elapsed = time.perf_counter() - fit_at
        context.listener(Progress(m * settings.iterations + i, total, loss, elapsed))

    fit = fit_recorrupted_member if settings.member == "recorrupted" else fit_member
    done = fit(
        u,
        guide,
        model,
        settings,
        network,
        roles=roles,
        seed=seed + m,
        flip=_FLIPS[m % len(_FLIPS)],
        device=context.device,
        probe=lambda: probe(u.shape),
        probe_step=EPSILON,
        progress=told,
        rendering=context.parts(f"member {m + 1} of {settings.members}: tiles"),
        checkpoint=checkpoint,
        key=f"{key}-fit",
    )
    checkpoint.drop(f"{key}-fit")
    context.checkpoint.keep(key, done, f"after {key}")
    return done


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    """The voxel-wise mean, summed in place (np.mean would stack them: a copy of all)."""
    total = arrays[0].copy()
    for a in arrays[1:]:
        total += a
    total /= len(arrays)
    return total


def spread(members: list[np.ndarray], inverse) -> np.ndarray:
    """The variance across the members in image units, per voxel (two passes, in place)."""
    mean = inverse(members[0])
    for x in members[1:]:
        mean += inverse(x)
    mean /= len(members)
    variance = np.zeros_like(mean)
    for x in members:
        d = inverse(x)
        d -= mean
        variance += np.square(d, out=d)
    variance /= len(members)
    return variance
