"""Shrinkage of a group of similar cubes in its 3D DCT (a DCT of every cube, then across
the group), the stages of BM4D: hard thresholding (stage 1) and the empirical Wiener weights
of a pilot (stage 2). Each returns the group's estimate and its aggregation weight.
"""

from __future__ import annotations

import torch


def hard_threshold(groups, dk, t, var, threshold: float):
    """Groups (B, K, n^3) -> their estimates and weights: coefficients of the cube DCT and
    the DCT across the group below `threshold` noise stds are zeroed."""
    coef = dk @ groups @ t.T
    keep = coef.abs() > threshold * var.sqrt()
    estimate = torch.where(keep, coef, torch.zeros_like(coef))
    weight = 1.0 / (var * keep).sum(dim=(1, 2)).clamp(min=float(var.min()))
    return dk.T @ estimate @ t, weight


def wiener(groups, pilots, dk, t, var):
    """Groups -> estimates: each coefficient times |p|^2 / (|p|^2 + s^2), p the pilot's."""
    pilot_coef = dk @ pilots @ t.T
    gain = pilot_coef**2 / (pilot_coef**2 + var)
    weight = 1.0 / (gain**2 * var).sum(dim=(1, 2)).clamp(min=float(var.min()) * 1e-3)
    return dk.T @ (gain * (dk @ groups @ t.T)) @ t, weight
