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
    EPSILON,
    counted_voxels,
    mean_risk,
    residual_variance,
    shifted,
    sure_terms,
)
from dipmed.restoration.guided.stabiliser import Stabiliser, psd
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
    if name == "bm4d":
        import bm4d  # optional extra; checked where the config is read

        spectrum = 1.0 if model.white else psd(model, u.shape)
        run = lambda x: bm4d.bm4d(x, spectrum).astype(np.float32)  # noqa: E731
        guides = {"plain": run(u)}
        clock.lap("guide")
        eps = 0.1  # BM4D is not linear in u: a small step
        changes = {"plain": run(shifted(u, eps)) - guides["plain"]}
    else:
        device, variant = context.device, "pair" if pair else "plain"
        variants = _VARIANTS if pair else _VARIANTS[:1]
        pair = collaborative.denoise(
            u, variances, report=context.parts("guide, slab"), device=device, variant=variant
        )
        guides = dict(zip(variants, _outputs(pair), strict=True))
        del pair
        clock.lap("guide")
        eps = EPSILON
        moved = collaborative.denoise(
            shifted(u, eps),
            variances,
            report=context.parts("guide's risk estimate, slab"),
            device=device,
            variant=variant,
        )
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


def _outputs(out) -> tuple:
    """`collaborative.denoise`'s output as a tuple (one array, or the pair's two)."""
    return out if isinstance(out, tuple) else (out,)


_VARIANTS = ("plain", "smooth")
