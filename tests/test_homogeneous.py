"""The Bayes stage's homogeneous-area test (`gaussian._flattened`, NL-Bayes's flat areas)."""

from __future__ import annotations

import numpy as np
import torch

from dipmed.restoration.guided import collaborative, gaussian

BAND = collaborative.FINAL.homogeneous  # (low, high): noise stds


def _groups(seed: int, level: torch.Tensor, texture: torch.Tensor):
    """Groups of 64 cubes of 64 voxels: a constant `level` per group plus a texture of
    std `texture` per group, seen through unit white noise; the pilot is the signal."""
    g = torch.Generator().manual_seed(seed)
    signal = level[:, None, None] + texture[:, None, None] * torch.randn(len(level), 64, 64,
                                                                          generator=g)  # fmt: skip
    return signal, signal + torch.randn(signal.shape, generator=g)


def test_a_flat_group_is_its_mean_and_a_textured_one_is_untouched():
    """Groups whose noisy values spread about their mean by under the band's low end come
    out as that one mean, in the stage and its smoother variant, echo or not; those over
    its high end (a texture of the noise's size) keep the Bayes estimate bit for bit; those
    between lie between; the weights stay."""
    level = torch.linspace(-3.0, 3.0, 16)
    texture = torch.cat([torch.zeros(8), torch.full((8,), 1.0)])
    signal, noisy = _groups(0, level, texture)
    noise, smooth = torch.eye(64), gaussian.series(0.8)
    centre = noisy.mean(dim=(1, 2), keepdim=True)
    noisy[:4] = centre[:4] + 0.8 * (noisy[:4] - centre[:4])  # quieter than the noise: flat
    spread = (noisy - centre).square().mean(dim=(1, 2)).sqrt()
    low, high = BAND
    flat, between, textured = spread < low, (spread >= low) & (spread < high), spread >= high
    assert bool(flat[:4].all()) and not bool(flat[4:].any()) and int(between.sum()) > 0
    assert bool(textured[8:].all())  # a texture of the noise's size: never moved
    heard = 0.3 * torch.randn(signal.shape, generator=torch.Generator().manual_seed(1))
    for echo in (None, heard):
        plain = gaussian.estimate(noisy, signal, noise, 1.0, smooth=smooth, echo=echo)
        tested = gaussian.estimate(
            noisy, signal, noise, 1.0, smooth=smooth, echo=echo, homogeneous=BAND
        )
        means = centre.expand_as(noisy)
        for before, out in ((plain[0], tested[0]), (plain[2], tested[2])):
            assert torch.allclose(out[flat], means[flat])
            assert torch.equal(before[textured], out[textured])
            gap_before = (before[between] - means[between]).abs().sum(dim=(1, 2))
            gap_after = (out[between] - means[between]).abs().sum(dim=(1, 2))
            assert bool((gap_after < gap_before).all())
        assert torch.equal(plain[1], tested[1])


def test_the_test_brings_a_flat_region_closer_to_its_truth():
    """On a volume flat but for a step, a piloted Bayes stage with the test comes closer to
    the truth in the flat part than without it."""
    rng = np.random.default_rng(3)
    clean = np.zeros((24, 24, 24), np.float32)
    clean[:, :, 16:] = 6.0
    noisy = (clean + rng.standard_normal(clean.shape)).astype(np.float32)
    pilot = clean + 0.3 * rng.standard_normal(clean.shape).astype(np.float32)

    def final(band):
        settings = collaborative.CollaborativeSettings(homogeneous=band)
        return collaborative.bayes(noisy, pilot, 1.0, settings=settings)

    off, on = final(None), final(BAND)
    error = {k: float(np.mean((x - clean)[:, :, :12] ** 2)) for k, x in (("off", off), ("on", on))}
    assert error["on"] < 0.9 * error["off"]
