"""Guided denoising: a non-local guide, a deep prior trained on a risk estimate, a choice by risk.

Arrays in, arrays out (image units). Steps:

1. Stabilise: MR magnitude through the Rician VST (`vst`), CT (Gaussian) by u = y / sigma,
   so the noise has unit variance; its spectrum per cube coefficient from the noise model.
2. Guide g: two-stage collaborative filtering (`collaborative`; with no member or SURE
   members, of its Bayes stage and that stage's smoother variant the one of lower SURE:
   `guide`), or BM4D when asked for and installed (non-commercial licence: never the
   default). Each Bayes stage takes a flat group (noise about one level) as its mean.
3. Deep prior members: x = g + f_theta(u) (flipped per member, seeded per member), f a
   MONAI BasicUNet that sees u. By default (`recorrupted`) each is trained as the final
   stage's pilot: the misfit to u - z / a of that stage run on u + a z (Pang et al., CVPR
   2021), which needs no clean image and cannot reward fitting the noise of u. With
   `member: sure`, on Monte-Carlo SURE of x (Jo, Chun, Choi, ICCV 2021):
       SURE = |u - x|^2 / N - 1 + 2 b'S (x(u + eps b) - x(u)) / (eps N),  b ~ N(0, I)
   with S the noise covariance (identity for white noise), the output the 0.99 moving
   average of the iterates.
4. Candidates: the input, the guide, and the Bayes stage of `collaborative` piloted by
   the members' mean ("final": each group of similar cubes a Gaussian whose covariance
   is the members' mean's; recorrupted members' mean takes the guide's local mean, which
   their loss does not see: `ensemble.anchored`; the mean itself, "prior", is kept for
   benchmarks only), on MR less the covariance of the guide's echo of the noise (its
   response to a probe of its own, `guide.echo`: the pilot echoes u's noise and
   over-states the signal's covariance by it; negative eigenvalues clipped), with its
   smoother variant from the same matching ("smooth": that covariance x 0.8, x 0.6 without
   the echo; flat weights; better on smooth anatomy seen through a PSF, worse on
   voxel-sharp edges).
   With no member (`fast`), the guide pilots that stage, on the guide's 3-voxel grid (no
   echo out; its smoother variant x 0.6).
   MR air farther than a few voxels from what the risks count is left to the pilot
   (`_finals`): on a whole head most of the field of view.
5. Choice by risk: each candidate's SURE, its divergence by one finite difference with a
   shared probe (through the whole guide; through the members at their final weights);
   the input has SURE = v, the noise variance in stabilised units (1, or where the level
   came from the wavelet estimate, as read on the guide's residual: `risk`), averaged
   over the voxels that are not air (MR: `risk.counted_voxels`; the air is step 7's).
   The lowest is returned: never one whose estimated risk exceeds the input's.
6. Significant residual returned (`residual`): what grouping averaged away and the data
   show (a small lesion with no similar block) goes back into x.
7. MR background: where the noisy magnitude's local mean is consistent with no signal
   (Rayleigh) and the estimate is low, the estimate is 0 (`background`), and so is its
   uncertainty (the data's test stands there; the error of true air is then 0).
8. Uncertainty, in image units per voxel: the square root of the local risk (the SURE
   terms of the returned estimate averaged over a 2-voxel Gaussian; those of unit noise
   variance shifted to the mean of v's: `_local_terms`) plus the variance across the
   members (SURE members; recorrupted members are pilots, not estimates, and `fast` has
   none: the variance of the pair final stage returned, guide).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from scipy.ndimage import gaussian_filter, maximum_filter

from dipmed.restoration.guided import collaborative
from dipmed.restoration.guided.ensemble import Members, fit_members, spread
from dipmed.restoration.guided.guide import Guide, echo, guide_pilots_final, guide_stage
from dipmed.restoration.guided.residual import significant_residual
from dipmed.restoration.guided.risk import (
    counted_voxels,
    final_sure_terms,
    mean_risk,
    prior_risk,
)
from dipmed.restoration.guided.settings import GuidedResult, GuidedSettings
from dipmed.restoration.guided.stabiliser import Stabiliser, coefficient_variances
from dipmed.restoration.networks import NetworkConfig
from dipmed.restoration.noise.background import no_signal
from dipmed.restoration.noise.model import NoiseModel
from dipmed.restoration.runtime.context import RunContext

_LOCAL_RISK_VOX = 2.0  # Gaussian width (voxels) over which the SURE terms are averaged
_FINALS = ("final", "smooth")  # the final stage and its smoother variant (`bayes`'s "pair")
_BAYES = collaborative.FINAL  # the final stage's settings
_AIR_MARGIN = 3  # voxels: the final stage is exact this far from the counted ones (`_finals`)


def guided_denoise(
    noisy: np.ndarray,
    model: NoiseModel,
    modality: str,
    settings: GuidedSettings,
    *,
    network: NetworkConfig,
    seed: int,
    context: RunContext,
) -> GuidedResult:
    """Denoise `noisy` (image units) under the noise `model`, `settings` resolved; the
    module docstring gives the steps. The context's checkpoint keeps the guide and each
    member as they are done; `context.candidates` keeps the prior and final images
    (benchmarks). Whole-volume arrays are few and updated in place (`runtime.memory`)."""
    start, clock = time.perf_counter(), _Clock()
    stabiliser = Stabiliser(model, modality)
    u = stabiliser.forward(noisy)
    variances = coefficient_variances(model)
    chosen_guide = guide_stage(u, variances, settings, model, stabiliser, context, clock)
    guide, guide_terms, pilot_change = chosen_guide.image, chosen_guide.terms, chosen_guide.change
    model, guide_variant = chosen_guide.model, chosen_guide.variant
    chosen_guide.terms = chosen_guide.change = None  # the image, model and variant stay
    members = fit_members(u, guide, stabiliser, model, settings, network, seed, context)
    clock.lap("members")
    counted = counted_voxels(guide, stabiliser, model)  # MR: not the air
    echoed = stabiliser.rician and members.pilot is not None  # the guide's echo out (MR)
    finals = _finals(u, chosen_guide, members, pilot_change, variances, settings, context,
                     clock, counted, echoed)  # fmt: skip
    del pilot_change
    risks, chosen = _choice(model, guide_terms, finals, counted, members.risk)
    share = 1.0 if counted is None else float(counted.mean())
    final = finals.get(chosen, finals.get("final", (None, None)))[0]
    kept = _done_with_pilot(members, finals, final, guide, stabiliser, context.candidates)
    estimate, terms = {"input": (u, None), "guide": (guide, guide_terms), **finals}[chosen]
    del guide_terms, finals, final, counted, chosen_guide
    restored, uncertainty = _finish(
        noisy, u, estimate, terms, chosen, members.spread, stabiliser, model
    )
    del u, estimate, terms
    guide_image = stabiliser.inverse(guide)
    clock.lap("choice, residual and uncertainty")
    return GuidedResult(
        estimate=restored,
        uncertainty=uncertainty,
        guide=guide_image,
        chosen=chosen,
        settings=settings,
        noise_source=model.source,
        noise_correlated=not model.white,
        risks=risks,
        member_curves=tuple(members.curves),
        seconds=time.perf_counter() - start,
        candidates={"guide": guide_image, **kept},
        stage_seconds=clock.laps,
        guide_variant=guide_variant,
        counted_share=share,
        final_echo=echoed,
    )


def _choice(model, guide_terms, finals, counted, members_risk: float | None):
    """(every candidate's risk over the `counted` voxels, the lowest's name): the input's
    is the noise variance; the members' mean's (`members_risk`) is logged beside them
    (benchmarks, report), not a candidate."""
    risks = {"input": model.stabilised_variance, "guide": mean_risk(guide_terms, counted)}
    risks.update({k: mean_risk(t, counted) for k, (_, t) in finals.items()})
    chosen = min(risks, key=risks.get)
    if members_risk is not None:
        risks["prior"] = members_risk
    return risks, chosen


def _done_with_pilot(members: Members, finals, final, guide, stabiliser, keep):
    """The prior and final images kept for benchmarks (`keep`), then the pilot dropped.
    Where no member gave a spread (recorrupted members are pilots, not estimates; `fast`
    fits none), the spread is that of (final, guide), `final` the final stage returned
    (or, where neither is, the plain one)."""
    kept = {}
    if keep and members.pilot is not None:
        kept = {"prior": stabiliser.inverse(members.pilot)}
    if keep:
        kept.update({k: stabiliser.inverse(x) for k, (x, _) in finals.items()})
    members.pilot = None
    if final is not None and members.spread is None:
        members.spread = spread([final, guide], stabiliser.inverse)
    return kept


def _finals(u, guide: Guide, members, pilot_change, variances, settings, context, clock,
            counted, echoed: bool):  # fmt: skip
    """Candidate -> (estimate, SURE terms) of the final stage: piloted by the members'
    mean, the guide's echo out where `echoed` (`guide.echo`), or with no member (`fast`)
    by the guide on the guide's grid; {} where neither.

    The echo is taken out on MR alone: on the CT it gained 0.00-0.02 dB (a crop, the whole
    head) for 1.2x a crop's time and 1.5x the whole head's; on the MNI +0.06-0.11 dB
    (benchmarks/README.md, issue 22, twenty-first session).

    Exact only within `_AIR_MARGIN` voxels of the `counted` ones (`collaborative.bayes`'s
    `where`): the risks and the choice read those alone, and the rest is MR air (there a
    voxel has the cubes that reach it, or the pilot's value; step 7 sets it to 0 where the
    data say no signal). On the whole MNI that leaves about 37 % of the reference cubes
    (benchmarks/README.md, issue 22, eighteenth session)."""
    wanted = None if counted is None else maximum_filter(counted, size=2 * _AIR_MARGIN + 1)
    model = guide.model
    if members.pilot is not None:
        heard = None
        if echoed:
            heard = echo(u, guide, variances, settings.guide, context)
            clock.lap("guide's echo")
        return _final_stage(u, members, pilot_change, variances, model, context, clock, wanted,
                            heard)  # fmt: skip
    if guide_pilots_final(settings):
        stage = replace(_BAYES, step=_BAYES.step_guide_bayes)
        return _pair_stage(u, guide.image, pilot_change, variances, model, context, clock, stage,
                           wanted)  # fmt: skip
    return {}


def _final_stage(u, members: Members, pilot_change, variances, model, context, clock, wanted,
                 heard):  # fmt: skip
    """The members' risk, then the Bayes stage they pilot and its smoother variant
    ("final", "smooth": `collaborative.bayes`, variant "pair", over what `wanted`
    reaches, the guide's echo `heard` out of its pilot's covariance), each with its SURE
    terms.

    The pilot moves with u, p(u + eps b) ~ p + dp: dp is the guide's change plus the
    members' change at their final weights (in patches); fitted whole, the members' own
    divergence is the average of their steps' terms (the risk's `divergence`)."""
    pilot, roles = members.pilot, members.roles
    if members.divergence is None:  # patches: the averaged weights' change is the output's
        pilot_change += members.change
        members.risk = prior_risk(u, pilot, pilot_change, None, roles, model)
    else:
        members.risk = prior_risk(u, pilot, pilot_change, members.divergence, roles, model)
        pilot_change += members.change
    members.change = members.divergence = members.roles = None
    return _pair_stage(u, pilot, pilot_change, variances, model, context, clock, _BAYES, wanted,
                       heard)  # fmt: skip


def _pair_stage(u, pilot, pilot_change, variances, model, context, clock, settings, where,
                heard=None):  # fmt: skip
    """The Bayes stage piloted by `pilot` and its smoother variant ("final", "smooth":
    `collaborative.bayes`, variant "pair", under `settings`, over the voxels `where`
    reaches, the `heard` echo out), each with its SURE terms; the pilot moves with u by
    `pilot_change` (made the moved pilot in place)."""
    report = context.parts("final Bayes stage, slab")
    finals = collaborative.bayes(
        u, pilot, variances, settings=settings, report=report, device=context.device,
        variant="pair", where=where, echo=heard,
    )  # fmt: skip
    clock.lap("final stage")
    pilot_change += pilot  # in place: now the moved pilot, p + dp
    report = context.parts("final stage's risk estimate, slab")
    terms = final_sure_terms(
        u, finals, variances, model, pilot_change, settings, report, context.device, where, heard
    )
    clock.lap("final stage's risk estimate")
    return dict(zip(_FINALS, zip(finals, terms, strict=True), strict=True))


def _finish(noisy, u, estimate, terms, chosen, spread, stabiliser, model):
    """The chosen candidate with its significant residual, back in image units, MR air
    at 0, and its uncertainty: the square root of the local risk (the SURE terms averaged
    over a `_LOCAL_RISK_VOX` Gaussian) plus the members' spread."""
    if chosen == "input":
        restored, terms = noisy.astype(np.float32), np.full_like(u, model.stabilised_variance)
    local = _local_terms(u, estimate, terms, model.stabilised_variance)
    if chosen != "input":
        estimate = estimate + significant_residual(u - estimate, model)
        restored = stabiliser.inverse(estimate)
    air = None
    if stabiliser.rician and chosen != "input":  # air: where the data say no signal, 0
        air = no_signal(noisy, restored, model.sigma)
        restored[air] = 0.0
    uncertainty = gaussian_filter(local, _LOCAL_RISK_VOX)
    del local
    np.clip(uncertainty, 0.0, None, out=uncertainty)
    uncertainty *= np.square(stabiliser.slope(estimate))
    if spread is not None:
        uncertainty += spread
    np.sqrt(uncertainty, out=uncertainty)
    if air is not None:  # the test's decision stands there: no signal, no error expected
        uncertainty[air] = 0.0
    return restored, uncertainty


def _local_terms(u, estimate, terms, v: float) -> np.ndarray:
    """The SURE terms the local risk averages: those of unit noise variance, (u - x)^2 - 1
    + 2 d, shifted by a constant to the mean of the terms of v, (u - x)^2 - v + 2 v d. The
    local map keeps the shape it had before v was read (its divergence d weighed as much as
    the misfit, and ranked the error better: benchmarks/README.md, issue 22, tenth
    session), and takes v's calibration."""
    local = terms.astype(np.float32)  # a copy
    if v == 1.0:
        return local
    target = float(local.mean(dtype=np.float64))
    misfit = np.subtract(u, estimate, dtype=np.float32)
    np.square(misfit, out=misfit)
    misfit *= 1.0 - 1.0 / v
    local /= v
    local += misfit  # (u - x)^2 - 1 + 2 d
    del misfit
    local += target - float(local.mean(dtype=np.float64))
    return local


class _Clock:
    """Wall-clock seconds per stage, each lap from the end of the one before."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._at = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self._at, 3)
        self._at = now
