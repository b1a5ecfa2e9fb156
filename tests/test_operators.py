"""Operators: exact adjoints, shapes, and degenerate settings."""

from __future__ import annotations

import pytest
import torch

from dipmed.restoration.operators import Downsample, Identity, Mask, slice_profile

SHAPE = (12, 9, 20)  # divisible by the factors below, deliberately unequal


def _operators():
    generator = torch.Generator().manual_seed(0)
    mask = (torch.rand(SHAPE, generator=generator) > 0.3).double()
    return [
        Identity(),
        Downsample((1, 1, 4)),
        Downsample((2, 3, 1)),
        Downsample((1, 1, 4), profile="gaussian"),
        Downsample((3, 1, 2), profile="gaussian"),
        Mask(mask),
    ]


@pytest.mark.parametrize("operator", _operators(), ids=lambda op: repr(op)[:40])
def test_adjointness(operator):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn((2, 1, *SHAPE), generator=generator, dtype=torch.float64)
    y = torch.randn(
        (2, 1, *operator.measured_shape(SHAPE)), generator=generator, dtype=torch.float64
    )
    forward = operator.forward(x)
    assert forward.shape == y.shape
    lhs = (forward * y).sum()
    rhs = (x * operator.adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10)


def test_box_downsample_averages_blocks():
    x = torch.arange(8, dtype=torch.float64).view(1, 1, 1, 8)
    y = Downsample((1, 1, 4)).forward(x)
    assert y.flatten().tolist() == [1.5, 5.5]


def test_factor_one_is_identity_and_profiles_sum_to_one():
    x = torch.randn(1, 1, *SHAPE)
    assert torch.equal(Downsample((1, 1, 1)).forward(x), x)
    for factor in (2, 3, 4):
        for profile in ("box", "gaussian"):
            weights = slice_profile(factor, profile)
            assert weights.sum().item() == pytest.approx(1.0)
            assert weights.numel() % 2 == factor % 2


def test_constant_stays_constant_under_box_downsample():
    x = torch.full((1, 1, *SHAPE), 3.0)
    assert torch.allclose(Downsample((2, 3, 4)).forward(x), torch.tensor(3.0))


def test_bad_factors_are_rejected():
    with pytest.raises(ValueError, match="factors"):
        Downsample((1, 0, 2))
    with pytest.raises(ValueError, match="profile"):
        Downsample((1, 1, 2), profile="lanczos")
