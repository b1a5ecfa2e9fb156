"""The guide of guided denoising: the collaborative filter (or BM4D, optional) on the
stabilised volume, with its SURE terms and its change along the shared probe."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from dipmed.restoration.guided import collaborative
from dipmed.restoration.guided.risk import EPSILON, residual_variance, shifted, sure_terms
from dipmed.restoration.guided.stabiliser import psd
from dipmed.restoration.noise.model import NoiseModel


def guide_stage(u, variances, settings, model: NoiseModel, modality: str, context, clock):
    """(g, its SURE terms, g(u + eps b) - g(u), the noise model the risk estimates use):
    the guide and its change computed or taken from the checkpoint. Where the noise level
    came from the wavelet estimate, the model's `stabilised_variance` is read on the
    guide's residual (`risk.residual_variance`)."""
    saved = context.checkpoint.get("guide")
    if saved is None:
        saved = _guide(u, variances, settings.guide, model, context, clock)
        context.checkpoint.keep("guide", saved, "after guide")
    else:
        context.stage("guide: taken from the checkpoint")
    guide, change, eps = saved
    if model.source == "wavelet":
        v = residual_variance(u, guide, change, eps, foreground=modality == "MR")
        model = replace(model, stabilised_variance=v)
    terms = sure_terms(u, guide, change, eps, model).astype(np.float16)
    clock.lap("guide's risk estimate")
    return guide, terms, change, model


def _guide(u: np.ndarray, variances, name: str, model: NoiseModel, context, clock):
    """The guide g(u), g(u + eps b) - g(u) for the SURE terms and the final stage's
    divergence (a finite difference through the whole guide, matching included, with the
    shared probe b), and eps."""
    if name == "bm4d":
        import bm4d  # optional extra; checked where the config is read

        spectrum = 1.0 if model.white else psd(model, u.shape)
        run = lambda x: bm4d.bm4d(x, spectrum).astype(np.float32)  # noqa: E731
        guide = run(u)
        clock.lap("guide")
        eps = 0.1  # BM4D is not linear in u: a small step
        change = run(shifted(u, eps)) - guide
    else:
        device = context.device
        guide = collaborative.denoise(
            u, variances, report=context.parts("guide, slab"), device=device
        )
        clock.lap("guide")
        eps = EPSILON
        change = collaborative.denoise(
            shifted(u, eps),
            variances,
            report=context.parts("guide's risk estimate, slab"),
            device=device,
        )
        change -= guide
    return guide, change, eps
