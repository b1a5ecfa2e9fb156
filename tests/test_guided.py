"""Guided denoising and its parts on tiny seeded phantoms: the Rician VST, the noise model
(white and correlated, against known levels), the collaborative guide, the risk estimate,
and the uncertainty map."""

from __future__ import annotations

import itertools
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.ndimage import convolve, gaussian_filter
from scipy.stats import spearmanr

from conftest import run_cli
from dipmed.config import load_config
from dipmed.phantom import ct_phantom, mr_phantom
from dipmed.restoration.guided import collaborative, gaussian, matching, pipeline, transform
from dipmed.restoration.guided.guide import guide_pilots_final, pairs_guide
from dipmed.restoration.guided.risk import EPSILON, residual_variance, shifted, sure_terms
from dipmed.restoration.noise.model import LAG, NoiseModel, cube_covariance, estimate_noise_model
from dipmed.restoration.noise.vst import RicianVST, stabilised_variance_profile
from dipmed.restoration.restore import Task, restore
from dipmed.volume import Meta, Volume

QUICK = {"guided.members": 2, "guided.iterations": 5, "guided.recorruptions": 2}
ONE = {**QUICK, "guided.members": 1}  # where the ensemble is not under test


def _psnr(estimate, truth) -> float:
    peak = float(truth.max() - truth.min())
    return float(10 * np.log10(peak**2 / np.mean((estimate - truth) ** 2)))


def _rician(clean, sigma, rng, kernel=None):
    parts = [rng.normal(0.0, 1.0, clean.shape) for _ in range(2)]
    if kernel is not None:  # correlated noise: white noise filtered, rescaled to unit std
        parts = [convolve(p, kernel, mode="wrap") / np.sqrt(np.sum(kernel**2)) for p in parts]
    return np.abs(clean + sigma * parts[0] + 1j * sigma * parts[1]).astype(np.float32)


@pytest.fixture(scope="module")
def brain():
    """An MR phantom with partial-volume edges and an air border (a head in its FOV)."""
    clean = np.zeros((36, 32, 28), np.float32)
    clean[4:-4, 4:-4, 4:-4] = gaussian_filter(mr_phantom((28, 24, 20)), 0.8)
    return clean


def test_the_vst_makes_rician_noise_unit_variance_and_its_inverse_is_unbiased():
    profile = stabilised_variance_profile(np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0]))
    assert np.all(np.abs(profile - 1.0) < 0.03), profile
    rng, vst = np.random.default_rng(0), RicianVST(2.0)
    for nu in (1.0, 3.0, 10.0):  # in image units, sigma 2: SNR 0.5 to 5
        z = np.abs(nu + rng.normal(0, 2, 200_000) + 1j * rng.normal(0, 2, 200_000))
        mean = vst.forward(z).mean()
        assert vst.inverse(np.array([mean]))[0] == pytest.approx(nu, rel=0.03)
        assert np.mean(z) > nu * 1.02 or nu > 5  # the plain mean is biased at low SNR


def test_the_noise_level_is_read_from_the_air_white_or_correlated(brain):
    sigma = 0.05 * brain.max()
    rng = np.random.default_rng(1)
    white = estimate_noise_model(_rician(brain, sigma, rng), "MR")
    assert white.source == "air" and white.white
    assert white.sigma == pytest.approx(sigma, rel=0.1)
    kernel = np.ones((2, 2, 2))
    correlated = estimate_noise_model(_rician(brain, sigma, rng, kernel), "MR")
    assert correlated.source == "air" and not correlated.white
    assert correlated.sigma == pytest.approx(sigma, rel=0.15)
    rho = correlated.correlation  # box 2: rho(1) = 1/2 along each axis, rho(2) = 0
    for axis in range(3):
        line = np.moveaxis(rho, axis, 0)[:, LAG, LAG]
        assert line[LAG + 1] == pytest.approx(0.5, abs=0.1) and line[LAG + 2] < 0.2
    assert rho[LAG + 1, LAG + 1, LAG] == pytest.approx(0.25, abs=0.08)  # separable


def test_a_faint_ct_noise_correlation_reads_white_and_a_real_one_does_not():
    """CT air with 70k border voxels resolves a lag-1 correlation of 0.05 (significant),
    which changes nothing a filter does: it reads white; 0.5 reads correlated."""
    clean = np.full((64, 64, 64), -1000.0, np.float32)
    clean[16:-16, 16:-16, 16:-16] = 40.0
    rng = np.random.default_rng(4)
    for weight, white in ((0.025, True), (0.3, False)):
        axis = np.array([weight, 1.0, weight])
        kernel = np.einsum("i,j,k->ijk", axis, axis, axis)
        noise = convolve(rng.normal(0, 1, clean.shape), kernel, mode="wrap")
        model = estimate_noise_model(clean + 20.0 * noise / np.sqrt(np.sum(kernel**2)), "CT")
        assert model.source == "air" and model.white == white
        assert model.sigma == pytest.approx(20.0, rel=0.05)
    rho = model.correlation[LAG + 1, LAG, LAG]
    assert rho == pytest.approx(2 * 0.3 / (1 + 2 * 0.3**2), abs=0.05)


def test_without_air_the_wavelet_estimate_is_used(brain):
    inner = brain[6:-6, 6:-6, 6:-6] + 100.0
    noisy = inner + np.random.default_rng(2).normal(0, 10.0, inner.shape).astype(np.float32)
    model = estimate_noise_model(noisy, "CT")
    assert model.source == "wavelet" and model.sigma == pytest.approx(10.0, rel=0.15)


@pytest.mark.parametrize("off", [0.9, 1.1])
def test_a_noise_level_off_by_a_tenth_is_read_again_on_the_guides_residual(brain, off):
    """SURE leans on the noise variance (2 % in it moves the estimate by about 0.02), and
    the wavelet estimate reads anatomy as noise. Stabilised by a level a tenth off, the
    variance read on the guide's residual is within 5 % of the truth, and the guide's
    SURE with it within 0.03 of its true error, where with 1 it is 0.1-0.2 off."""
    sigma = 0.08 * float(brain.max())
    x = brain / (off * sigma)  # the level used to stabilise: `off` times the true one
    u = x + np.random.default_rng(1).normal(0, 1 / off, x.shape).astype(np.float32)
    guide = collaborative.denoise(u, 1.0)
    change = collaborative.denoise(shifted(u, EPSILON), 1.0) - guide
    v = residual_variance(u, guide, change, EPSILON, foreground=False)
    assert v == pytest.approx(1 / off**2, rel=0.05)
    true = float(np.mean((guide - x) ** 2))
    as_given = NoiseModel(off * sigma, None, "wavelet")
    read = replace(as_given, stabilised_variance=v)
    error_given = abs(float(sure_terms(u, guide, change, EPSILON, as_given).mean()) - true)
    error_read = abs(float(sure_terms(u, guide, change, EPSILON, read).mean()) - true)
    assert error_read < 0.03 and error_given > 0.1


def test_without_air_the_risk_uses_the_variance_read_on_the_guides_residual(brain):
    """A level from the wavelet detail: the input's risk is the noise variance read on the
    guide's residual, and the guide's SURE tracks its true error (`fast`: no member). With
    contrast the wavelet detail takes for noise (its level 30x too high), the guide of that
    level smooths the anatomy away; the variance read on its residual is still far below
    the guide's risk, and the input, the better of the two, is returned (with the input
    scoring 1, the guide was)."""
    config = load_config(None, **{"guided.quality": "fast"})
    for contrast, chosen in ((200.0, "an estimate"), (10**5, "input")):
        clean = brain[6:-6, 6:-6, 6:-6] / brain.max() * contrast + 100.0  # no air border
        noise = np.random.default_rng(8).normal(0, 10.0, clean.shape).astype(np.float32)
        volume = Volume(clean + noise, np.eye(4), Meta(modality="CT"))
        result = restore(volume, Task("denoise"), config)
        g, level = result.run, result.sigma
        assert g.noise_source == "wavelet", g.noise_source
        assert (g.chosen == "input") == (chosen == "input"), (contrast, g.risks)
        true = {
            "input": (10.0 / level) ** 2,  # CT: stabilised by the level
            "guide": float(np.mean((g.guide - clean) ** 2)) / level**2,
        }
        assert (true["input"] < true["guide"]) == (chosen == "input")
        if chosen != "input":
            assert g.risks["input"] == pytest.approx(true["input"], rel=0.05)
            assert abs(g.risks["guide"] - true["guide"]) < 0.03, (g.risks, true)


def test_the_local_risk_has_the_unit_variance_shape_and_the_read_variance_mean():
    """The uncertainty map averages SURE terms of unit noise variance (they ranked the
    error better) shifted by a constant to the mean of those of the variance read."""
    rng = np.random.default_rng(0)
    u, x, d = (rng.normal(size=(8, 8, 8)).astype(np.float32) for _ in range(3))
    v = 0.9
    terms = (u - x) ** 2 - v + 2 * v * d
    local = pipeline._local_terms(u, x, terms, v)
    shift = local - ((u - x) ** 2 - 1 + 2 * d)
    np.testing.assert_allclose(shift, shift.mean(), atol=1e-5)
    assert local.mean() == pytest.approx(terms.mean(), abs=1e-5)
    np.testing.assert_array_equal(pipeline._local_terms(u, x, terms, 1.0), terms)


def test_the_collaborative_guide_beats_the_noisy_input_and_gaussian_smoothing(brain):
    sigma = 0.08 * brain.max()
    noisy = brain + np.random.default_rng(3).normal(0, sigma, brain.shape).astype(np.float32)
    guide = collaborative.denoise(noisy, sigma**2)
    best_gaussian = max(_psnr(gaussian_filter(noisy, s), brain) for s in (0.5, 0.8, 1.2))
    assert _psnr(guide, brain) > _psnr(noisy, brain) + 6.0
    assert _psnr(guide, brain) > best_gaussian + 1.0


def test_the_bayes_stage_restores_white_and_coloured_noise_and_is_linear_in_the_data(brain):
    """The Bayes stage (a Gaussian model per group) improves on a hard-thresholding pilot
    (the guide's stage 1: BM4D's groups of 16 at 2.7 stds), and for a fixed pilot,
    without its homogeneous-area blend (which reads the data's spread), it is linear in
    the data."""
    sigma = 0.08 * brain.max()
    rng = np.random.default_rng(5)
    noisy = brain + rng.normal(0, sigma, brain.shape).astype(np.float32)
    pilot = collaborative.hard_threshold(noisy, sigma**2)
    restored = collaborative.bayes(noisy, pilot, sigma**2)
    assert _psnr(restored, brain) > _psnr(pilot, brain) + 0.5
    assert _psnr(restored, brain) > _psnr(noisy, brain) + 6.0
    probe = rng.normal(0, sigma, brain.shape).astype(np.float32)
    linear = collaborative.CollaborativeSettings(homogeneous=None)
    moved = collaborative.bayes(noisy + probe, pilot, sigma**2, settings=linear)
    moved -= collaborative.bayes(noisy, pilot, sigma**2, settings=linear)
    alone = collaborative.bayes(probe, pilot, sigma**2, settings=linear)
    assert np.abs(moved - alone).max() < 1e-3 * np.abs(alone).max()
    kernel = np.ones((2, 2, 2))  # coloured: white noise box-filtered, rescaled to sigma
    colour = convolve(rng.normal(0, 1, brain.shape), kernel, mode="wrap") / np.sqrt(8.0)
    coloured = (brain + sigma * colour).astype(np.float32)
    lags = np.abs(np.arange(-LAG, LAG + 1))
    along = np.clip(1.0 - lags / 2.0, 0.0, None)  # box 2: rho(0) = 1, rho(1) = 1/2
    correlation = np.einsum("i,j,k->ijk", along, along, along)
    variances = transform.coefficient_variances(cube_covariance(correlation, 4), 4)
    variances = variances * sigma**2
    pilot = collaborative.hard_threshold(coloured, variances)
    restored = collaborative.bayes(coloured, pilot, variances)
    wiener = collaborative.wiener(coloured, pilot, variances)
    assert _psnr(restored, brain) > _psnr(coloured, brain) + 6.0
    assert _psnr(restored, brain) > _psnr(wiener, brain) - 0.3  # here both lose to the pilot
    assert np.isfinite(collaborative.bayes(noisy, brain, sigma**2)).all()  # flat groups: C = 0


def test_the_final_stage_skips_the_air_it_cannot_reach_and_is_exact_where_wanted():
    """With `where` (the voxels wanted: the pipeline's counted voxels, widened), reference
    cubes whose groups cannot reach a wanted voxel are skipped: the wanted voxels come out
    bit for bit as over the whole volume; a voxel no cube covers (farther than a cube and
    twice the search radius from them) keeps the pilot's value."""
    clean = np.zeros((56, 56, 48), np.float32)  # a small head in a wide field of air
    head = (slice(20, 36), slice(19, 37), slice(17, 31))
    clean[head] = gaussian_filter(mr_phantom((16, 18, 14)), 0.8)
    variance = (0.05 * clean.max()) ** 2
    noisy = clean + np.random.default_rng(8).normal(0, variance**0.5, clean.shape)
    noisy = noisy.astype(np.float32)
    pilot = collaborative.hard_threshold(noisy, variance)
    where = clean > 0
    whole = collaborative.bayes(noisy, pilot, variance, variant="pair")
    part = collaborative.bayes(noisy, pilot, variance, variant="pair", where=where)
    reach = 4 + 2 * collaborative.CollaborativeSettings().search  # a cube's covering reach
    far = np.ones_like(where)
    far[tuple(slice(h.start - reach, h.stop + reach) for h in head)] = False
    assert far.mean() > 0.3
    for x, y in zip(whole, part, strict=True):
        np.testing.assert_array_equal(y[where], x[where])
        np.testing.assert_array_equal(y[far], pilot[far])
        assert not np.array_equal(x[far], pilot[far])


def test_the_bayes_pair_is_the_stage_and_its_scaled_covariance_variant(brain, monkeypatch):
    """`bayes(variant="pair")` from one matching: its first estimate is `bayes`'s, bit for bit; its
    second is the stage with the pilot's covariance x l (`smooth_scale`) and flat weights
    (computed here by a second Cholesky of l C + S), its gain's series within 1 % of the variant's
    change; for a fixed pilot, without the homogeneous-area blend, both are linear in the data."""
    sigma = 0.08 * brain.max()
    rng = np.random.default_rng(5)
    noisy = brain + rng.normal(0, sigma, brain.shape).astype(np.float32)
    pilot = collaborative.hard_threshold(noisy, sigma**2)
    first, variant = collaborative.bayes(noisy, pilot, sigma**2, variant="pair")
    plain = collaborative.bayes(noisy, pilot, sigma**2)
    assert np.array_equal(first, plain)

    def scaled(groups, pilots, noise, white=None, smooth=None, echo=None, homogeneous=None):
        scale = collaborative.CollaborativeSettings().smooth_scale  # the variant, exactly
        centred = (pilots - pilots.mean(dim=1, keepdim=True)) * np.sqrt(scale)
        mean = groups.mean(dim=1, keepdim=True)
        gain = gaussian.gain_of(centred, noise, white)
        out = (mean + (groups - mean) @ gain, torch.ones(len(groups)))
        return gaussian._flattened(groups, noise, homogeneous, out)  # the stage's blend too

    monkeypatch.setattr(gaussian, "estimate", scaled)
    exact = collaborative.bayes(noisy, pilot, sigma**2)
    monkeypatch.undo()
    assert np.abs(variant - exact).max() < 0.01 * np.abs(exact - plain).max()
    assert np.abs(variant - plain).mean() > 0.01 * sigma  # a variant, not the stage again
    probe = rng.normal(0, sigma, brain.shape).astype(np.float32)
    linear = collaborative.CollaborativeSettings(homogeneous=None)  # without the blend
    pair = [collaborative.bayes(x, pilot, sigma**2, variant="pair", settings=linear)
            for x in (noisy + probe, noisy, probe)]  # fmt: skip
    for m, x, a in zip(*pair, strict=True):
        assert np.abs(m - x - a).max() < 1e-3 * np.abs(a).max()


def test_aggregation_weights_sum_to_one_at_every_voxel_borders_included():
    """Each stage's aggregation divides by the weights covering each voxel (spread from the
    cubes' corners over the window): a constant volume comes back as itself, every voxel,
    for the thresholded, Wiener and Bayes stages and the smoother variant."""
    shape, level = (21, 18, 13), 7.0
    flat = np.full(shape, level, np.float32)
    ramp = flat + np.linspace(0, 1, shape[2], dtype=np.float32)  # a pilot with structure
    outputs = [
        collaborative.hard_threshold(flat, 0.01),
        collaborative.wiener(flat, ramp, 0.01),
        *collaborative.bayes(flat, ramp, 0.01, variant="pair"),
    ]
    for out in outputs:
        assert np.abs(out - level).max() < 1e-4 * level


def test_the_gain_stays_exact_where_the_pilot_dwarfs_the_noise():
    """A group whose pilot spreads thousands of noise stds (a wild member, a bone edge at a
    small noise level) is computed in float64: its gain A^-1 C keeps eigenvalues in [0, 1]
    (float32 gave -19 on such a pilot) and matches a float64 solve."""
    rng = np.random.default_rng(3)
    cubes = rng.normal(0, 1, (4, 64, 64)).astype(np.float32)
    cubes[:, :3] *= 3000.0  # three cubes far off the rest
    centred = torch.from_numpy(cubes - cubes.mean(axis=1, keepdims=True))
    noise = torch.eye(64)
    gain = gaussian.gain_of(centred, noise, 1.0).double()
    x = centred.double()
    c = x.transpose(1, 2) @ x / 63
    exact = torch.linalg.solve(c + noise.double() * (1 + 1e-5), c)
    assert float((gain - exact).abs().max()) < 1e-4
    eigenvalues = torch.linalg.eigvals(gain).real
    assert float(eigenvalues.min()) > -1e-4 and float(eigenvalues.max()) < 1 + 1e-4


def test_the_guide_pair_is_the_guide_and_its_smoother_variant_from_one_matching(brain):
    """`denoise(variant="pair")`: the plain guide bit for bit, and the variant alone bit
    for bit; the variant is smoother (a lower residual
    roughness is not asked: a different estimate at the guide's own scale 0.5)."""
    sigma = 0.08 * brain.max()
    noisy = brain + np.random.default_rng(7).normal(0, sigma, brain.shape).astype(np.float32)
    plain, smooth = collaborative.denoise(noisy, sigma**2, variant="pair")
    assert np.array_equal(plain, collaborative.denoise(noisy, sigma**2))
    assert np.array_equal(smooth, collaborative.denoise(noisy, sigma**2, variant="smooth"))
    assert np.abs(smooth - plain).mean() > 0.01 * sigma


@pytest.mark.parametrize("small_slab", [0, 10**9])  # one offset at a time, or a whole line
def test_matching_finds_the_nearest_cubes_with_the_reference_first(small_slab, monkeypatch):
    """The strided, pooled matching returns, for every reference cube, the k cubes of the
    search window nearest to it (brute force over every offset), the reference first even
    where a flat region ties many at distance 0; one offset at a time (large slabs) or
    several (small ones)."""
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(0, 1, (13, 11, 9)).astype(np.float32))
    x[:, :5] = 0.0  # a flat region: ties at distance 0
    n, radius, k = 4, 2, 8
    monkeypatch.setattr(matching, "_SMALL_SLAB", small_slab)
    ticks = next(matching.reference_slabs(x.shape, n, 2))
    found = matching.match(x, ticks, n, radius, k)
    cubes = x.unfold(0, n, 1).unfold(1, n, 1).unfold(2, n, 1)  # corner -> n^3 cube
    flat = lambda c: (c[0] * x.shape[1] + c[1]) * x.shape[2] + c[2]  # noqa: E731
    for row, corner in enumerate(itertools.product(*(t.tolist() for t in ticks))):
        ref = cubes[corner]
        window = [
            ((cubes[c] - ref).square().sum().item(), flat(c))
            for c in itertools.product(
                *(
                    range(max(0, a - radius), min(s - n, a + radius) + 1)
                    for a, s in zip(corner, x.shape, strict=True)
                )
            )
        ]
        best = sorted(d for d, _ in window)[:k]
        distance = {i: d for d, i in window}
        got = [distance[int(i)] for i in found[row]]
        assert int(found[row, 0]) == flat(corner)
        assert np.allclose(sorted(got), best, atol=1e-4)


def test_the_bayes_stage_holds_where_the_contrast_dwarfs_the_noise():
    """Edges of 2000 HU under noise of 0.1 HU: float32 rounding leaves some groups' A = C + S
    indefinite (their Cholesky fails); those are solved in float64 and the stage restores."""
    clean = ct_phantom((24, 22, 16)).astype(np.float32)
    noisy = clean + np.random.default_rng(0).normal(0, 0.1, clean.shape).astype(np.float32)
    restored = collaborative.bayes(noisy / 0.1, clean / 0.1, 1.0) * 0.1
    assert np.isfinite(restored).all()
    assert np.abs(restored - clean).mean() < 0.5 * np.abs(noisy - clean).mean()


@pytest.mark.parametrize("members", [1, 2])  # one member: its spread with the guide
def test_guided_denoising_beats_the_input_and_its_uncertainty_ranks_the_error(brain, members):
    sigma = 0.06 * brain.max()
    noisy = _rician(brain, sigma, np.random.default_rng(4))
    config = load_config(None, seed=0, **{**QUICK, "guided.members": members})
    result = restore(Volume(noisy, np.eye(4), Meta(modality="MR")), Task("denoise"), config)
    assert result.method == "guided" and result.run.noise_source == "air"
    assert _psnr(result.volume.array, brain) > _psnr(noisy, brain) + 5.0
    assert result.run.risks[result.run.chosen] < 1.0  # below the input's risk
    # the members' mean has its risk logged but is never a candidate
    assert "prior" in result.run.risks and result.run.chosen != "prior"
    assert len(result.run.member_curves) == members
    assert result.run.guide_variant == "plain"  # recorrupted members: no guide pair (`pairs_guide`)
    error = np.abs(result.volume.array - brain)
    rank = spearmanr(result.uncertainty.ravel(), error.ravel())[0]
    assert rank > 0.2, rank
    # calibrated to within a factor of two, as root mean squares (the air's zeros dilute
    # both alike)
    rms, rms_uncertainty = np.sqrt(np.mean(error**2)), np.sqrt(np.mean(result.uncertainty**2))
    assert 0.5 * rms < rms_uncertainty < 2.0 * rms, (rms, rms_uncertainty)


def test_the_fast_preset_pilots_the_final_stage_by_the_guide_and_times_each_stage(brain):
    """quality fast: no member; the guide pilots the final stage on the guide's grid (its
    pair); the risk still chooses among input, guide and the two, over the voxels that are
    not air (here 13 % of them; in the air SURE is biased and the background test decides),
    within 0.1 dB of the best of them there; and every stage that ran has its seconds."""
    noisy = _rician(brain, 0.06 * brain.max(), np.random.default_rng(4))
    volume = Volume(noisy, np.eye(4), Meta(modality="MR"))
    config = load_config(None, **{"guided.quality": "fast"})
    fast = restore(volume, Task("denoise"), config, candidates=True)
    g = fast.run
    assert g.settings.quality == "fast" and g.members == 0 and g.member_curves == ()
    assert guide_pilots_final(g.settings) and "prior" not in g.candidates
    assert set(g.risks) == {"input", "guide", "final", "smooth"}
    assert set(g.stage_seconds) == {
        "guide",
        "guide's risk estimate",
        "members",
        "final stage",
        "final stage's risk estimate",
        "choice, residual and uncertainty",
    }
    assert 0.05 < g.counted_share < 0.5  # the air left out of the risks
    tissue = brain > 2.0 * 0.06 * brain.max()  # not air: above 2 noise sigmas
    scores = {
        k: _psnr(g.candidates[k][tissue], brain[tissue]) for k in ("guide", "final", "smooth")
    }
    assert scores[g.chosen] > max(scores.values()) - 0.1, (g.chosen, scores)
    assert _psnr(fast.volume.array, brain) > _psnr(noisy, brain) + 5.0
    best = load_config(None, **{"guided.quality": "best"}).guided.resolved()
    default = load_config(None).guided.resolved()
    assert (default.members, best.members) == (1, 3) and default.member == "recorrupted"
    sure = load_config(None, **{"guided.member": "sure"}).guided.resolved()
    assert load_config(None).guided.resolved(white=False).member == "sure"  # auto, correlated
    assert sure.iterations > default.iterations  # SURE members keep their own step counts
    mine = load_config(None, **{"guided.quality": "best", "guided.members": 2}).guided.resolved()
    assert (mine.members, mine.iterations) == (2, best.iterations)  # a set key wins
    # the guide's pair where the guide is returned or SURE members fit around it; where
    # recorrupted members pilot the final stage (its own pair), the plain guide alone
    assert pairs_guide(g.settings) and pairs_guide(sure) and not pairs_guide(default)


def test_the_same_seed_gives_the_same_guided_result_on_cpu(brain):
    small = brain[6:-6, 6:-6, 4:-4]
    noisy = _rician(small, 0.05 * brain.max(), np.random.default_rng(6))
    volume = Volume(noisy, np.eye(4), Meta(modality="MR"))
    config = load_config(None, seed=2, **ONE)
    runs = [restore(volume, Task("denoise"), config) for _ in "ab"]
    np.testing.assert_array_equal(runs[0].volume.array, runs[1].volume.array)


def test_bf16_members_match_fp32_on_cpu(brain):
    """The bf16 autocast path (what a GPU runs) on the CPU: the members' mean differs from
    fp32's (autocast took effect), and the final stages it pilots score within 0.2 dB of
    fp32's; both results beat the input. (The members' mean is a pilot trained as a
    covariance source, not an estimate: its own score moves more, 0.4 dB here. The
    returned candidates are compared like for like: here guide and smooth are 0.0005
    apart in SURE, and which one returns moves with the thread count.)"""
    small = brain[6:-6, 6:-6, 4:-4]
    noisy = _rician(small, 0.06 * brain.max(), np.random.default_rng(7))
    volume = Volume(noisy, np.eye(4), Meta(modality="MR"))
    runs = {
        p: restore(
            volume,
            Task("denoise"),
            load_config(None, seed=3, **{**ONE, "guided.iterations": 10, "guided.precision": p}),
            candidates=True,
        )
        for p in ("fp32", "bf16")
    }
    priors = {p: r.run.candidates["prior"] for p, r in runs.items()}
    assert not np.array_equal(priors["fp32"], priors["bf16"])
    for name in ("final", "smooth"):
        scores = {p: _psnr(r.run.candidates[name], small) for p, r in runs.items()}
        assert abs(scores["bf16"] - scores["fp32"]) < 0.2, (name, scores)
    assert all(_psnr(r.volume.array, small) > _psnr(noisy, small) + 3 for r in runs.values())


def test_a_level_given_far_too_low_returns_the_lowest_risk_and_nothing_worse():
    """Pure noise with a level given 20x too low: the filters keep nearly all of it, so every
    candidate's risk is near the input's. The lowest is returned, never one above the
    input's, and it is no worse than the input (a previous probe put every candidate
    just above the input here; which side of it they land is the probe's chance)."""
    noisy = np.random.default_rng(7).normal(100, 5, (24, 22, 20)).astype(np.float32)
    config = load_config(None, noise_sigma=0.25, **ONE)
    result = restore(Volume(noisy, np.eye(4), Meta(modality="CT")), Task("denoise"), config)
    risks = result.run.risks
    chosen = {k: v for k, v in risks.items() if k != "prior"}
    assert result.run.chosen == min(chosen, key=chosen.get)
    assert risks[result.run.chosen] <= risks["input"]
    assert np.mean((result.volume.array - 100) ** 2) <= np.mean((noisy - 100) ** 2)


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_the_input_when_chosen_comes_back_as_it_is(modality):
    """Where the input has the lowest risk, the data come back bit for bit (MR air
    included: the background test is for estimates), the uncertainty the noise's own."""
    from dipmed.restoration.guided.stabiliser import Stabiliser
    from dipmed.restoration.noise.model import NoiseModel

    rng = np.random.default_rng(3)
    noisy = np.abs(rng.normal(0, 5, (12, 10, 8))).astype(np.float32)  # air-like MR data
    noisy[3:9, 3:7, 2:6] += 100.0
    model = NoiseModel(5.0, None, "given")
    stabiliser = Stabiliser(model, modality)
    u = stabiliser.forward(noisy)
    restored, uncertainty = pipeline._finish(noisy, u, u, None, "input", None, stabiliser, model)
    np.testing.assert_array_equal(restored, noisy)
    assert np.all(uncertainty >= 0)
    inside = (slice(4, 8), slice(4, 6), slice(3, 5))  # bright, far from the edges
    np.testing.assert_allclose(uncertainty[inside], 5.0, rtol=0.05)


def test_cli_writes_the_uncertainty_on_the_output_grid(tmp_path, capsys, mr_pair):
    _, noisy = mr_pair
    out, unc = tmp_path / "d.nii.gz", tmp_path / "u.nii.gz"
    args = ["denoise", noisy, out, "--uncertainty", unc, "--member-steps", "4", "--seed", "1"]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    written, source = nib.load(unc), nib.load(noisy)
    np.testing.assert_allclose(written.affine, source.affine)
    assert written.shape == source.shape
    assert np.all(np.asarray(written.dataobj) >= 0) and np.asarray(written.dataobj).max() > 0


def test_uncertainty_for_super_resolution_is_refused_before_anything_is_written(
    tmp_path, capsys, mr_pair
):
    _, noisy = mr_pair
    out = tmp_path / "s.nii.gz"
    args = ["sr", noisy, out, "--factor", "1,1,2", "--uncertainty", tmp_path / "u.nii.gz"]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "--uncertainty" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_the_significant_residual_brings_back_small_lesions_and_leaves_noise_alone():
    """Grouping averages away a lesion with no similar block; its residual stands out."""
    from dipmed.restoration.guided.residual import significant_residual
    from dipmed.restoration.noise.model import NoiseModel

    grid = np.indices((32, 32, 24)).astype(np.float32)
    tissue = 10.0 + 0.1 * grid[0] + 4.0 * (grid[1] > 20)  # stabilised units, one edge
    lesions = [
        sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= 1.5**2
        for centre in ((8, 8, 8), (20, 8, 14), (8, 14, 16), (24, 14, 8))
    ]
    clean = (tissue + 1.5 * sum(lesions)).astype(np.float32)  # +1.5 noise stds
    noisy = clean + np.random.default_rng(8).normal(0, 1, clean.shape).astype(np.float32)
    guide = collaborative.denoise(noisy, 1.0)
    white = NoiseModel(1.0, None, "given")
    returned = guide + significant_residual(noisy - guide, white)

    def kept(x):
        return np.mean([(x[m] - tissue[m]).mean() / 1.5 for m in lesions])

    assert kept(guide) < 0.35 and kept(returned) > kept(guide) + 0.2, (kept(guide), kept(returned))
    assert _psnr(returned, clean) > _psnr(guide, clean)
    noise = np.random.default_rng(9).normal(0, 1, (40, 40, 40)).astype(np.float32)
    assert np.mean(significant_residual(noise, white) ** 2) < 0.005  # of the noise's energy


def test_a_member_memorises_noise_only_where_it_trains_and_the_held_out_half_shows_it():
    """The member's loss (SURE on the trained half) keeps falling as the weights store the
    noise; on the held-out half, which no step trains on, the same SURE rises with the
    damage: that half is what the members' risk is read on."""
    from dipmed.restoration.guided import member
    from dipmed.restoration.guided.settings import GuidedSettings
    from dipmed.restoration.networks import NetworkConfig
    from dipmed.restoration.noise.model import NoiseModel

    clean = gaussian_filter(mr_phantom((24, 24, 16)), 0.8).astype(np.float32)
    clean *= 12.0 / clean.max()  # stabilised units: unit noise
    u = clean + np.random.default_rng(1).normal(0, 1, clean.shape).astype(np.float32)
    roles = member.held_out_half(u.shape, 0)
    assert set(np.unique(roles)) == {member.TRAINED, member.HELD_OUT}
    assert 0.45 < roles.mean() < 0.55 and np.array_equal(roles, member.held_out_half(u.shape, 0))
    _, _, curves, _ = member.fit_member(
        u, gaussian_filter(u, 1.0), NoiseModel(1.0, None, "given"),
        GuidedSettings(iterations=40), NetworkConfig(), roles=roles, seed=0, flip=(),
        device=torch.device("cpu"), probe=lambda: np.zeros_like(u), probe_step=0.2,
        progress=lambda i, loss: None,
    )  # fmt: skip
    trained, held_out = curves[:, 0], curves[:, 1]
    assert curves.shape == (40, 2)
    assert trained[-5:].mean() < trained[:5].mean() - 0.05  # the loss falls
    assert held_out[-5:].mean() > trained[-5:].mean() + 0.1  # ... and the held-out half says so


def test_a_recorrupted_member_pilots_the_final_stage_better_than_the_guide():
    """The recorrupted member (trained for what the Bayes stage makes of it) is a better
    pilot than the guide it starts from, and its held-out pair's misfit is logged beside
    the loss every 4th step; the same seed draws the same pairs (a resumed fit sees them again)."""
    from dipmed.restoration.guided import recorrupted
    from dipmed.restoration.guided.member import held_out_half
    from dipmed.restoration.guided.settings import GuidedSettings
    from dipmed.restoration.networks import NetworkConfig
    from dipmed.restoration.noise.model import NoiseModel

    clean = gaussian_filter(mr_phantom((28, 28, 16)), 0.6).astype(np.float32)
    clean *= 10.0 / clean.max()  # stabilised units: unit noise
    u = clean + np.random.default_rng(2).normal(0, 1, clean.shape).astype(np.float32)
    guide = collaborative.denoise(u, 1.0)
    white = NoiseModel(1.0, None, "given")
    pilot, change, curves, divergence = recorrupted.fit_recorrupted_member(
        u, guide, white, GuidedSettings(iterations=16, recorruptions=3), NetworkConfig(),
        roles=held_out_half(u.shape, 0), seed=0, flip=(), device=torch.device("cpu"),
        probe=lambda: np.zeros_like(u), probe_step=0.2, progress=lambda i, loss: None,
    )  # fmt: skip
    assert curves.shape == (16, 2) and divergence is None and not change.any()
    checked = np.isfinite(curves[:, 1])  # the held-out pair: every 4th step and the last
    assert np.isfinite(curves[:, 0]).all() and np.flatnonzero(checked).tolist() == [3, 7, 11, 15]
    by_guide, by_member = (collaborative.bayes(u, p, 1.0) for p in (guide, pilot))
    # +0.10 dB here: the stage's homogeneous-area blend takes this phantom's flat regions to
    # their mean whichever the pilot (it was +0.1 and more before the blend)
    assert _psnr(by_member, clean) > _psnr(by_guide, clean) + 0.05
    stage = recorrupted._Stage(white, 1.0, torch.device("cpu"))
    U, H = torch.from_numpy(u)[None, None], torch.zeros((1, 1, *u.shape), dtype=torch.uint8)
    first, again = (stage.pairs(U, H, 64, 2, 5) for _ in "ab")
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.target, b.target) and torch.equal(a.bases, b.bases)


def test_the_members_mean_takes_the_guides_local_mean_and_keeps_its_detail():
    """A recorrupted member's local mean is in no loss (the final stage reads its cubes
    less their group's mean) and drifts: anchored to the guide's, the offset and a slow
    field go, the fine detail stays, and the change along the probe is anchored by the
    same linear map (the final stage's SURE sees what the anchored pilot does)."""
    from dipmed.restoration.guided.ensemble import ANCHOR_VOX, Members, anchored

    rng = np.random.default_rng(3)
    truth = gaussian_filter(mr_phantom((40, 36, 24)), 0.8).astype(np.float32) / 80.0
    guide = gaussian_filter(truth, 1.0)  # the guide: right locally, short of the detail
    ramp = np.linspace(-1.0, 1.0, truth.shape[0], dtype=np.float32)[:, None, None]
    pilot = truth + 1.2 + 0.5 * ramp  # the member: the detail, and a drifting local mean
    change = rng.normal(0, 1, truth.shape).astype(np.float32)
    members = Members(pilot=pilot.copy(), change=change.copy())
    anchored(members, guide)
    inner = (slice(6, -6),) * 3  # the Gaussian's reach from the borders aside
    before, after, by_guide = (
        np.mean((x - truth)[inner] ** 2) for x in (pilot, members.pilot, guide)
    )
    assert after < 0.1 * before and after < 0.5 * by_guide
    assert abs(float(np.mean((members.pilot - truth)[inner]))) < 0.1  # the offset was 1.2
    detail = (truth - guide)[inner]
    kept = np.corrcoef((members.pilot - guide)[inner].ravel(), detail.ravel())[0, 1]
    assert kept > 0.8
    np.testing.assert_allclose(
        members.change, change - gaussian_filter(change, ANCHOR_VOX), atol=1e-5
    )
    moved = Members(pilot=pilot + 0.2 * change, change=change.copy())
    anchored(moved, guide)
    np.testing.assert_allclose(moved.pilot - members.pilot, 0.2 * members.change, atol=1e-4)


def test_recorruptions_of_correlated_noise_share_its_correlation():
    """For correlated noise, z is drawn with the noise's correlation (the pair's noises are
    independent only then; the guide's echo's probe too): its lag-1 correlation along each
    axis is the model's."""
    from dipmed.restoration.guided.stabiliser import coloured
    from dipmed.restoration.noise.model import NoiseModel

    axis = np.array([0.0, 0.3, 1.0, 0.3, 0.0])  # lags -2..2 along one axis, white elsewhere
    correlation = np.zeros((5, 5, 5))
    correlation[:, 2, 2] = axis
    white = np.random.default_rng(0).standard_normal((48, 48, 48)).astype(np.float32)
    z = coloured(white, NoiseModel(1.0, correlation, "air"))
    assert abs(z.var() - 1.0) < 0.05
    lag = [float(np.mean(z * np.roll(z, 1, axis=a))) for a in range(3)]
    assert abs(lag[0] - 0.3) < 0.03 and abs(lag[1]) < 0.03 and abs(lag[2]) < 0.03, lag


def test_the_members_sure_and_the_candidates_risks_leave_mr_air_out():
    """MR air (the guide below 2 noise sigmas) is in neither half of the members' SURE
    and out of the candidates' risks: there the stabilised noise is not Gaussian, SURE is
    biased and a network learns to exploit it. Head voxels keep their random halves; CT,
    correlated noise and a volume nearly all dark keep every voxel."""
    from dipmed.restoration.guided import member
    from dipmed.restoration.guided.ensemble import member_roles
    from dipmed.restoration.guided.risk import counted_voxels, mean_risk
    from dipmed.restoration.guided.stabiliser import Stabiliser
    from dipmed.restoration.noise.model import NoiseModel

    clean = gaussian_filter(mr_phantom((32, 32, 20)), 0.8).astype(np.float32)
    sigma = 0.05 * clean.max()
    model = NoiseModel(sigma, None, "given")
    mr = Stabiliser(model, "MR")
    guide = mr.forward(clean)  # a perfect guide, stabilised
    roles = member_roles(guide, mr, model, 0)
    air, head = clean == 0, clean > 4 * sigma
    assert np.all(roles[air] == member.IGNORED)
    assert not np.any(roles[head] == member.IGNORED)
    assert 0.4 < np.mean(roles[head] == member.HELD_OUT) < 0.6
    counted = counted_voxels(guide, mr, model)
    np.testing.assert_array_equal(counted, roles != member.IGNORED)
    terms = np.where(counted, 0.1, -5.0).astype(np.float16)  # the air's terms do not count
    assert mean_risk(terms, counted) == pytest.approx(0.1, rel=1e-3)
    assert abs(mr.inverse(np.float32([mr.level(2 * sigma)]))[0] - 2 * sigma) < 0.01 * sigma
    ct = Stabiliser(model, "CT")
    assert not np.any(member_roles(ct.forward(clean), ct, model, 0) == member.IGNORED)
    assert counted_voxels(ct.forward(clean), ct, model) is None
    correlated = NoiseModel(sigma, np.full((3, 3, 3), 1 / 27), "given")
    assert not np.any(member_roles(guide, mr, correlated, 0) == member.IGNORED)
    nearly_all_air = mr.forward(np.where(clean > 0.9 * clean.max(), clean, 0))
    assert np.mean(mr.inverse(nearly_all_air) < 2 * sigma) > 0.95
    assert not np.any(member_roles(nearly_all_air, mr, model, 0) == member.IGNORED)
