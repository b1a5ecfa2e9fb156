"""The guide of guided denoising: the collaborative filter (or BM4D, optional) on the
stabilised volume, with its SURE terms and its change along the shared probe.

The collaborative guide's Bayes stage gives, from one matching, its plain estimate and
its smoother variant (`collaborative`: the hard-thresholded pilot's covariance x 0.5,
flat weights); the one of lower SURE is the guide (`Guide.variant`). Where recorrupted
members pilot the final stage, which has its own pair, the guide is the plain stage alone,
as their pairs' guides are: the variant was neutral there on the benchmark crops and cost
a third of the whole MNI's guide passes (`pairs_guide`; benchmarks/README.md, issue 22,
twelfth session). With no member (`fast`), the guide pilots the final stage
(`guide_pilots_final`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dipmed.restoration.guided import collaborative
from dipmed.restoration.guided.risk import (
    ECHO_STREAM,
    EPSILON,
    counted_voxels,
    mean_risk,
    probe,
    residual_variance,
    shifted,
    sure_terms,
)
from dipmed.restoration.guided.stabiliser import Stabiliser, coloured, psd
from dipmed.restoration.noise.model import NoiseModel


@dataclass
class Guide:
    """The guide g(u), its SURE terms (float16), g(u + eps b) - g(u), the noise model the
    risk estimates use, and the variant of the collaborative guide's Bayes stage it is
    ("plain" or "smooth"; BM4D: "plain")."""

    image: np.ndarray
    terms: np.ndarray
    change: np.ndarray
    model: NoiseModel
    variant: str = "plain"


def guide_stage(u, variances, settings, model: NoiseModel, stabiliser: Stabiliser, context, clock):
    """The guide (`Guide`) computed or taken from the checkpoint. Where the noise level
    came from the wavelet estimate, the model's `stabilised_variance` is read on the plain
    guide's residual (`risk.residual_variance`); then each variant's SURE, the lower kept."""
    saved = context.checkpoint.get("guide")
    if saved is None:
        pair = pairs_guide(settings)
        saved = _guide(u, variances, settings.guide, model, stabiliser, context, clock, pair)
        context.checkpoint.keep("guide", saved, "after guide")
    else:
        context.stage("guide: taken from the checkpoint")
    guide, change, eps, variant, v = saved
    model = replace(model, stabilised_variance=v)
    terms = sure_terms(u, guide, change, eps, model).astype(np.float16)
    clock.lap("guide's risk estimate")
    return Guide(guide, terms, change, model, variant)


def pairs_guide(settings) -> bool:
    """Whether the guide is chosen from its pair (`settings` resolved): the collaborative
    guide (BM4D has one variant) with no member (`fast`: the guide is returned or pilots
    the final stage) or with SURE members (correlated noise: they fit u around the guide),
    not where recorrupted members pilot the final stage."""
    return settings.guide == "collaborative" and (
        not settings.fits_members or settings.member == "sure"
    )


def guide_pilots_final(settings) -> bool:
    """Whether the guide pilots the final stage (`settings` resolved): the collaborative
    guide with no member (`fast`), the pair on the guide's grid (`step_guide_bayes`). On
    the benchmark crops and 8 others (MNI Rician 3-9 %) it gained 0.27-0.37 dB over the
    guide alone for about 0.7x the guide's time (benchmarks/README.md, issue 22, thirteenth
    session); on three CT crops SURE's pick was within -0.08..+0.04 dB of the guide."""
    return settings.guide == "collaborative" and not settings.fits_members


def _guide(u, variances, name: str, model: NoiseModel, stabiliser, context, clock, pair: bool):
    """(g, g(u + eps b) - g(u), eps, its variant, the noise variance v SURE uses): the
    change is a finite difference through the whole guide, matching included, with the
    shared probe b; with `pair`, of the two variants the one of lower SURE (over the voxels
    a risk counts: `risk.counted_voxels`)."""
    variant = "pair" if pair else "plain"
    variants = _VARIANTS if pair else _VARIANTS[:1]
    out = _outputs(_run(name, u, variances, model, context, variant, "guide"))
    guides = dict(zip(variants, out, strict=True))
    del out
    clock.lap("guide")
    eps = _step(name)
    moved = _run(name, shifted(u, eps), variances, model, context, variant, "guide's risk estimate")
    changes = {}
    for key, m in zip(variants, _outputs(moved), strict=True):
        m -= guides[key]
        changes[key] = m
    del moved, m
    v = model.stabilised_variance
    if model.source == "wavelet":
        v = residual_variance(u, guides["plain"], changes["plain"], eps, stabiliser.rician)
    if len(guides) == 1:  # nothing to choose (its SURE terms come in `guide_stage`)
        return guides["plain"], changes["plain"], eps, "plain", v
    scored = replace(model, stabilised_variance=v)
    counted = counted_voxels(guides["plain"], stabiliser, model)
    risk = {
        k: mean_risk(sure_terms(u, g, changes[k], eps, scored), counted) for k, g in guides.items()
    }
    del counted
    variant = min(risk, key=risk.get)
    context.stage(
        "guide: " + ", ".join(f"{k} SURE {r:.4f}" for k, r in risk.items()) + f"; {variant} kept"
    )
    return guides[variant], changes[variant], eps, variant, v


def echo(u, guide: Guide, variances, name: str, context) -> np.ndarray:
    """J c = (g(u + eps c) - g(u)) / eps: the guide's response to a unit noise c of the
    data's spectrum (`stabiliser.coloured` of a probe from `risk.ECHO_STREAM`), the echo
    of u's noise that the final stage takes out of its pilot's covariance (`gaussian`).

    Its own probe, one more pass of the guide: from the risk's probe, the correction
    would be a function of the probe the risk estimate scores it with (SURE read the
    corrected stage 0.008-0.015 under its true error on the benchmark crops:
    benchmarks/README.md, issue 22, twentieth session)."""
    eps = _step(name)
    moved = coloured(probe(u.shape, ECHO_STREAM), guide.model)
    moved *= eps
    moved += u
    moved = _run(name, moved, variances, guide.model, context, guide.variant, "guide's echo")
    moved -= guide.image
    moved /= eps
    return moved


def _run(name: str, x, variances, model: NoiseModel, context, variant: str, label: str):
    """The guide `name` of x: BM4D, or the collaborative filter's `variant` ("plain",
    "smooth", or "pair": both from one matching, a tuple); `label` its progress's."""
    if name == "bm4d":
        import bm4d  # optional extra; checked where the config is read

        spectrum = 1.0 if model.white else psd(model, x.shape)
        return bm4d.bm4d(x, spectrum).astype(np.float32)
    report = context.parts(f"{label}, slab")
    return collaborative.denoise(
        x, variances, report=report, device=context.device, variant=variant
    )


def _step(name: str) -> float:
    """The finite difference's step through the guide: BM4D is not linear in u, a small one."""
    return 0.1 if name == "bm4d" else EPSILON


def _outputs(out) -> tuple:
    """`collaborative.denoise`'s output as a tuple (one array, or the pair's two)."""
    return out if isinstance(out, tuple) else (out,)


_VARIANTS = ("plain", "smooth")
