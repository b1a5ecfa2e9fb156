"""The guide of guided denoising: the collaborative filter (or BM4D, optional) on the
stabilised volume, with its SURE terms and its change along the shared probe."""

from __future__ import annotations

import numpy as np

from dipmed.restoration.guided import collaborative
from dipmed.restoration.guided.risk import EPSILON, shifted, sure_terms
from dipmed.restoration.guided.stabiliser import psd
from dipmed.restoration.noise.model import NoiseModel

CHOICE_BLOCK = 64  # side of the central block on which the guide alone picks its settings
_ALONE_CHOICES = {
    "16 cubes a group at 2.7 stds": collaborative.CollaborativeSettings(),
    "32 cubes a group at 3.0 stds": collaborative.ALONE,
}


def guide_stage(u, variances, settings, model, context, clock):
    """(g, its SURE terms, g(u + eps b) - g(u), the collaborative filter's settings as
    words), computed or taken from the checkpoint."""
    saved = context.checkpoint.get("guide")
    if saved is None:
        saved = _guide(u, variances, settings, model, context, clock)
        context.checkpoint.keep("guide", saved, "after guide")
    else:
        context.stage("guide: taken from the checkpoint")
    return saved


def _guide(u: np.ndarray, variances, settings, model: NoiseModel, context, clock):
    """The guide g(u), its SURE terms (float16: they only feed the mean and a smoothed
    map), and g(u + eps b) - g(u) for the final stage's divergence: a finite difference
    through the whole guide (matching included), with the shared probe b. Returned alone
    (no members), the collaborative guide takes the settings of lower SURE (`_alone`)."""
    if settings.guide == "bm4d":
        import bm4d  # optional extra; checked where the config is read

        spectrum = 1.0 if model.white else psd(model, u.shape)
        run = lambda x: bm4d.bm4d(x, spectrum).astype(np.float32)  # noqa: E731
        guide = run(u)
        clock.lap("guide")
        eps = 0.1  # BM4D is not linear in u: a small step
        change = run(shifted(u, eps)) - guide
        terms = sure_terms(u, guide, change, eps, model).astype(np.float16)
        clock.lap("guide's risk estimate")
        return guide, terms, change, ""
    label, done = next(iter(_ALONE_CHOICES)), None
    if not settings.fits_members:
        label, done = _alone(u, variances, model, context, clock)
    if done is None:
        done = _collaborative(u, variances, _ALONE_CHOICES[label], model, context, clock)
    return (*done, label)


def _collaborative(u, variances, settings, model, context, clock):
    """(g, its SURE terms, its change along the probe) of the collaborative filter with
    `settings`."""
    guide = collaborative.denoise(
        u, variances, settings=settings, report=context.parts("guide, slab"),
        device=context.device,
    )  # fmt: skip
    clock.lap("guide")
    change = collaborative.denoise(
        shifted(u, EPSILON), variances, settings=settings,
        report=context.parts("guide's risk estimate, slab"), device=context.device,
    )  # fmt: skip
    change -= guide
    terms = sure_terms(u, guide, change, EPSILON, model).astype(np.float16)
    clock.lap("guide's risk estimate")
    return guide, terms, change


def _alone(u, variances, model, context, clock):
    """The guide returned alone: BM4D's stage-1 settings or `collaborative.ALONE`, the one
    of lower SURE on the central `CHOICE_BLOCK`^3 block of u (SURE ranked them as their
    true errors did on 15 of 15 crops: benchmarks/README.md, eighth session). (its label
    in `_ALONE_CHOICES`, the guide's triple when the block is the whole volume, else
    None)."""
    block = tuple(
        slice(max(0, (n - CHOICE_BLOCK) // 2), max(0, (n - CHOICE_BLOCK) // 2) + CHOICE_BLOCK)
        for n in u.shape
    )
    whole = all(n <= CHOICE_BLOCK for n in u.shape)
    part = u if whole else np.ascontiguousarray(u[block])
    tried = {}
    for label, candidate in _ALONE_CHOICES.items():
        done = _collaborative(part, variances, candidate, model, context, clock)
        tried[label] = (float(done[1].mean(dtype=np.float64)), done)
        del done
    label = min(tried, key=lambda k: tried[k][0])
    risks = ", ".join(f"{k} {v[0]:.4f}" for k, v in tried.items())
    context.stage(f"guide alone: {label} (SURE {risks}{'' if whole else ' on a block'})")
    return label, tried[label][1] if whole else None
