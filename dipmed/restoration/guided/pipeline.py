"""Guided denoising: a non-local guide, a deep prior trained on a risk estimate, a choice by risk.

Arrays in, arrays out (image units). Steps:

1. Stabilise: MR magnitude through the Rician VST (`vst`), CT (Gaussian) by u = y / sigma,
   so the noise has unit variance; its spectrum per cube coefficient from the noise model.
2. Guide g: two-stage collaborative filtering (`collaborative`), or BM4D when asked for
   and installed (non-commercial licence: never the default).
3. Deep prior members: x = g + f_theta(u) (flipped per member, seeded per member), f a
   MONAI BasicUNet that sees u, so the output depends on the data and Monte-Carlo SURE
   applies (Jo, Chun, Choi, ICCV 2021):
       SURE = |u - x|^2 / N - 1 + 2 b'S (x(u + eps b) - x(u)) / (eps N),  b ~ N(0, I)
   with S the noise covariance (identity for white noise). The output is the 0.99
   moving average of the iterates.
4. Candidates: the input, the guide, and the Bayes stage of `collaborative` piloted by
   the members' mean ("final": each group of similar cubes a Gaussian whose covariance
   is the members' mean's; the mean itself, "prior", is kept for benchmarks only). On the
   benchmark's CT crop with the BM4D guide it gave 49.01 dB where the Wiener weights of
   the same pilot gave 48.89.
5. Choice by risk: each candidate's SURE, its divergence by one finite difference with a
   shared probe (through the whole guide; through the members at their final weights);
   the input has SURE = 1. The lowest is returned: never one whose estimated risk exceeds
   the input's.
6. Significant residual returned: the residual u - x smoothed by a 1.2-voxel Gaussian (a
   matched filter for a 3-voxel blob) is tested against the smoothed noise's own std;
   where it exceeds 3.5 of them, and one voxel around, the residual (lightly smoothed, 0.7
   voxel) goes back into x. Grouping averages away what has no similar block (a small
   lesion); this returns it (benchmark crop, 6 lesions at Rician 5 %: 0.24 -> 0.52 of the
   contrast kept, +0.08 dB) and leaves noise alone (pure noise: 0.2 % of the voxels,
   0.1 % of its energy; lesion-free MNI 9 % and CT crops: no voxel, +0.000 dB).
7. MR background: where the noisy magnitude's local mean is consistent with no signal
   (Rayleigh) and the estimate is low, the estimate is 0 (`background`), and so is its
   uncertainty (the data's test stands there; the error of true air is then 0).
8. Uncertainty, in image units per voxel: the square root of the local risk (the SURE
   terms of the returned estimate averaged over a 2-voxel Gaussian) plus the variance
   across the members.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy.ndimage import binary_dilation, gaussian_filter

from dipmed.restoration.guided import collaborative
from dipmed.restoration.guided.member import HELD_OUT, IGNORED, correlate, fit_member, held_out_half
from dipmed.restoration.networks import NetworkConfig
from dipmed.restoration.noise.background import no_signal
from dipmed.restoration.noise.model import NoiseModel, cube_covariance
from dipmed.restoration.noise.vst import RicianVST
from dipmed.restoration.runtime.checkpoint import Checkpoint
from dipmed.restoration.runtime.events import Progress, Report, Stage, stage_parts

_FLIPS = ((), (0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2))
_EPSILON_GUIDE = 0.2  # finite-difference step (noise stds) for the guide's divergence
_LOCAL_RISK_VOX = 2.0  # Gaussian width (voxels) over which the SURE terms are averaged
_DETECT_VOX = 1.2  # Gaussian width (voxels) of the residual tested for structure
_DETECT_Z = 3.5  # structure: the smoothed residual above this many of its noise stds
_RETURN_VOX = 0.7  # Gaussian width (voxels) of the residual returned there
_DARK_SIGMAS = 2.0  # MR: voxels whose guide is below this many sigma are out of the SURE
_MIN_BRIGHT = 0.05  # ... unless fewer than this fraction of the voxels would be left


QUALITY = {  # preset -> (deep-prior members, SURE steps per member); benchmarks/README.md
    "fast": (0, 0),  # the open guide alone: whole MNI on a CPU 0.5x BM4D + VST's time
    "default": (1, 60),  # one member piloting the final stage: whole MNI 1.7x BM4D + VST
    "best": (3, 150),  # three members: the best measured quality, ~5x default's time
}


@dataclass(frozen=True)
class GuidedSettings:
    quality: str = "default"  # fast | default | best (QUALITY): members and steps when unset
    guide: str = "collaborative"  # collaborative (open) | bm4d (optional, non-commercial)
    members: int | None = None  # deep-prior members (a seed and a flip each); None: the preset's
    iterations: int | None = None  # SURE steps per member; None: the preset's
    learning_rate: float = 0.001  # Adam step size
    epsilon: float = 0.1  # finite-difference step for the divergence (noise stds)
    ema: float = 0.99  # moving average of the iterates (of the weights when in patches)
    patch: int = 64  # side of the patches fitted (voxels); a smaller volume is fitted whole
    precision: str = "fp32"  # fp32 | bf16: the members' network under bf16 autocast

    @property
    def fits_members(self) -> bool:
        """Whether members are fitted (resolved settings); False: the guide alone."""
        return bool(self.members) and bool(self.iterations)

    def resolved(self) -> GuidedSettings:
        """Members and steps filled in from the quality preset where they are unset."""
        members, steps = QUALITY[self.quality]
        return replace(
            self,
            members=members if self.members is None else self.members,
            iterations=steps if self.iterations is None else self.iterations,
        )


@dataclass(frozen=True)
class GuidedResult:
    estimate: np.ndarray  # image units
    uncertainty: np.ndarray  # image units, per voxel
    guide: np.ndarray  # image units
    chosen: str  # "final" | "guide" | "input"
    risks: dict = field(default_factory=dict)  # SURE per candidate (stabilised units)
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # trained half
    held_out_losses: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    seconds: float = 0.0
    candidates: dict = field(default_factory=dict, repr=False)  # name -> image units
    stage_seconds: dict = field(default_factory=dict)  # stage -> wall-clock seconds


class _Stabiliser:
    """y (image units) <-> u (unit-variance noise)."""

    def __init__(self, model: NoiseModel, modality: str):
        self.rician = modality == "MR"
        self.sigma = model.sigma
        self._vst = RicianVST(model.sigma)

    def forward(self, y: np.ndarray) -> np.ndarray:
        return self._vst.forward(y) if self.rician else (y / self.sigma).astype(np.float32)

    def inverse(self, u: np.ndarray) -> np.ndarray:
        return self._vst.inverse(u) if self.rician else (u * self.sigma).astype(np.float32)

    def level(self, image: float) -> float:
        """The stabilised value whose inverse is `image` (image units; the inverse is
        monotone)."""
        if not self.rician:
            return image / self.sigma
        grid = np.linspace(-4.0, 8.0 + image / self.sigma, 4096, dtype=np.float32)
        return float(np.interp(image, self.inverse(grid), grid))

    def slope(self, u: np.ndarray) -> np.ndarray:
        """d(image)/du at u: converts stabilised errors to image units."""
        step = 0.05
        return (self.inverse(u + step) - self.inverse(u - step)) / (2 * step)


def guided_denoise(
    noisy: np.ndarray,
    model: NoiseModel,
    modality: str,
    settings: GuidedSettings,
    *,
    network: NetworkConfig,
    seed: int,
    device: torch.device,
    progress: Report | None = None,
    checkpoint: Checkpoint | None = None,
    candidates: bool = False,
) -> GuidedResult:
    """Denoise `noisy` (image units) under the noise `model`; see the module docstring.

    With a `checkpoint`, the guide, each member and the member being fitted are saved as
    they are done (and when due), and what it holds is taken instead of recomputed. With
    `candidates`, the result keeps the prior and final candidates' images (benchmarks
    score them; two whole-volume arrays more). Whole-volume arrays are few and updated in
    place: they set the peak memory (`memory`)."""
    start = time.perf_counter()
    clock = _Clock()
    stabiliser = _Stabiliser(model, modality)
    u = stabiliser.forward(noisy)
    variances = _coefficient_variances(model)
    saved = checkpoint.get("guide") if checkpoint else None
    if saved is None:
        saved = _guide(u, variances, settings.guide, model, progress, device, clock)
        _keep(checkpoint, "guide", saved)
    elif progress:
        progress(Stage("guide: taken from the checkpoint"))
    guide, guide_terms, prior_change = saved  # the pilot's change starts as the guide's
    del saved
    members, change_sum, divergence_sum, losses = [], None, None, []
    count = settings.members if settings.fits_members else 0
    roles = _member_roles(guide, stabiliser, model, seed) if count else None
    fit_at = time.perf_counter()  # the steps' ETA counts from here, not from the guide
    for m in range(count):
        done = checkpoint.get(f"member{m}") if checkpoint else None
        if done is not None:
            member, change, curve, divergence = done
            if progress:
                progress(Stage(f"member {m + 1} of {settings.members}: taken from the checkpoint"))
        else:
            member, change, curve, divergence = _fit_member(
                m,
                u,
                guide,
                roles,
                model,
                settings,
                network,
                seed,
                device,
                progress,
                checkpoint,
                fit_at,
            )
        members.append(member)
        if change_sum is None:
            change_sum = change
        else:
            change_sum += change  # in place: one whole-volume array less at the peak
        if divergence is not None:  # fitted whole (a small volume): the average's own
            divergence_sum = divergence if divergence_sum is None else divergence_sum + divergence
        losses.append(curve)
        del member, change, divergence, done
    clock.lap("members")
    final, final_terms, spread, prior_image, prior_risk = None, None, None, None, None
    if members:  # the members' mean ("prior"), their spread, the Bayes stage it pilots
        prior = _mean(members)
        change_sum /= len(members)
        if divergence_sum is None:  # patches: the averaged weights' change is the output's
            prior_change += change_sum  # the pilot's change: the guide's and the members'
            prior_risk = _prior_risk(u, prior, prior_change, None, roles, model)
        else:  # fitted whole: the average of the steps' divergence terms is the output's
            divergence_sum /= len(members)
            prior_risk = _prior_risk(u, prior, prior_change, divergence_sum, roles, model)
            prior_change += change_sum
        del change_sum, divergence_sum, roles
        # one member: the spread of the pair it and the guide, the estimators the final
        # stage saw (correlated MNI crop: rank r 0.33 without it, 0.56 with three members)
        spread = _spread(members if len(members) > 1 else [*members, guide], stabiliser.inverse)
        del members
        final = collaborative.bayes(
            u,
            prior,
            variances,
            report=stage_parts(progress, "final Bayes stage, slab"),
            device=device,
        )
        clock.lap("final stage")
        # The prior alone is not a candidate: it is what the final stage's pilot, which
        # re-filters u, is made of; its risk is logged (benchmarks, report)
        prior_image = stabiliser.inverse(prior) if candidates else None
        prior_change += prior  # in place: the pilot moved with u, p(u + eps b) ~ p + dp
        moved = prior_change
        del prior_change, prior
        final_terms = _final_sure_terms(
            u,
            final,
            variances,
            model,
            moved,
            stage_parts(progress, "final stage's risk estimate, slab"),
            device,
        )
        del moved
        clock.lap("final stage's risk estimate")
    else:
        del prior_change
    risks = {"input": 1.0, "guide": float(guide_terms.mean(dtype=np.float64))}
    if final is not None:
        risks["final"] = float(final_terms.mean(dtype=np.float64))
    chosen = min(risks, key=risks.get)
    if prior_risk is not None:  # logged beside the candidates' (benchmarks, report), not one
        risks["prior"] = prior_risk
    final_image = stabiliser.inverse(final) if candidates and final is not None else None
    estimate = {"input": u, "guide": guide, "final": final}[chosen]
    terms = {"input": None, "guide": guide_terms, "final": final_terms}[chosen]
    del guide_terms, final_terms, final
    if chosen == "input":
        restored, terms = noisy.astype(np.float32), np.ones_like(u)
    else:
        estimate = estimate + significant_residual(u - estimate, model)
        restored = stabiliser.inverse(estimate)
    del u
    air = None
    if stabiliser.rician and chosen != "input":  # air: where the data say no signal, 0
        air = no_signal(noisy, restored, model.sigma)
        restored[air] = 0.0
    uncertainty = gaussian_filter(terms.astype(np.float32), _LOCAL_RISK_VOX)
    del terms
    np.clip(uncertainty, 0.0, None, out=uncertainty)
    uncertainty *= np.square(stabiliser.slope(estimate))
    del estimate
    if spread is not None:
        uncertainty += spread
    del spread
    np.sqrt(uncertainty, out=uncertainty)
    if air is not None:  # the test's decision stands there: no signal, no error expected
        uncertainty[air] = 0.0
    guide_image = stabiliser.inverse(guide)
    del guide
    kept = {"prior": prior_image, "final": final_image} if final_image is not None else {}
    clock.lap("choice, residual and uncertainty")
    return GuidedResult(
        estimate=restored,
        uncertainty=uncertainty,
        guide=guide_image,
        chosen=chosen,
        risks=risks,
        losses=np.concatenate([c[:, 0] for c in losses]) if losses else np.zeros(0),
        held_out_losses=np.concatenate([c[:, 1] for c in losses]) if losses else np.zeros(0),
        seconds=time.perf_counter() - start,
        candidates={"guide": guide_image, **kept},
        stage_seconds=clock.laps,
    )


class _Clock:
    """Wall-clock seconds per stage, each lap from the end of the one before."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._at = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self._at, 3)
        self._at = now


def _member_roles(
    guide: np.ndarray, stabiliser: _Stabiliser, model: NoiseModel, seed: int
) -> np.ndarray:
    """Each voxel's role in the members' SURE: a random half held out (no member trains
    on it; the members' risk is read there) and, for MR with white noise, the dark voxels
    in neither.

    Dark: the guide below `_DARK_SIGMAS` noise sigmas (image units). There the stabilised
    noise is far from Gaussian (the VST of near-Rayleigh data is bounded below and
    skewed), SURE is biased, and a network trained on it learns to exploit the bias on
    every voxel (both halves' SURE fell to -1.5 on `make run`'s MR phantom). Kept in when
    fewer than `_MIN_BRIGHT` of the voxels are not dark, and for correlated noise, where
    leaving the air out made the members memorise faster (benchmarks/README.md).
    """
    roles = held_out_half(guide.shape, seed)
    if stabiliser.rician and model.white:
        dark = guide < stabiliser.level(_DARK_SIGMAS * stabiliser.sigma)
        if dark.mean() <= 1.0 - _MIN_BRIGHT:
            roles[dark] = IGNORED
    return roles


def _prior_risk(u, prior, change, divergence, roles, model) -> float:
    """The members' mean's SURE on the held-out voxels, which no member trained on (the
    trained half's misses what the weights memorised of the noise there:
    benchmarks/README.md, issue 22).

    Its divergence: `change` along the probe (the guide's, and in patches the averaged
    weights'), plus, fitted whole, `divergence`: the members' per-voxel terms averaged
    over their steps, as their output is."""
    terms = _sure_terms(u, prior, change, _EPSILON_GUIDE, model)
    if divergence is not None:
        terms += 2.0 * divergence
    return float(terms[roles == HELD_OUT].mean(dtype=np.float64))


def _fit_member(
    m, u, guide, roles, model, settings, network, seed, device, progress, checkpoint, fit_at
):
    """Member m, resumed from the checkpoint's state when there is one, then kept there."""
    total = settings.members * settings.iterations
    key = f"member{m}"
    state = checkpoint.get(f"{key}-fit") if checkpoint else None
    if state is not None and progress:
        progress(Stage(f"member {m + 1} of {settings.members}: resuming from step {state['step']}"))
    member, change, curve, divergence = fit_member(
        u,
        guide,
        model,
        settings,
        network,
        roles=roles,
        seed=seed + m,
        flip=_FLIPS[m % len(_FLIPS)],
        device=device,
        probe=lambda: _probe(u.shape),
        probe_step=_EPSILON_GUIDE,
        progress=lambda i, loss: (
            progress
            and progress(
                Progress(m * settings.iterations + i, total, loss, time.perf_counter() - fit_at)
            )
        ),
        rendering=stage_parts(progress, f"member {m + 1} of {settings.members}: tiles"),
        checkpoint=checkpoint,
        key=f"{key}-fit",
    )
    if checkpoint is not None:
        checkpoint.drop(f"{key}-fit")
    _keep(checkpoint, key, (member, change, curve, divergence))
    return member, change, curve, divergence


def _keep(checkpoint: Checkpoint | None, key: str, value) -> None:
    """A finished stage into the checkpoint; a requested stop takes effect here."""
    if checkpoint is not None:
        checkpoint.keep(key, value, f"after {key}")


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    """The voxel-wise mean, summed in place (np.mean would stack them: a copy of all)."""
    total = arrays[0].copy()
    for a in arrays[1:]:
        total += a
    total /= len(arrays)
    return total


def _spread(members: list[np.ndarray], inverse) -> np.ndarray:
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


def _coefficient_variances(model: NoiseModel):
    n = collaborative.CollaborativeSettings().cube
    if model.white:
        return 1.0
    return collaborative.coefficient_variances(cube_covariance(model.correlation, n), n)


def _guide(u: np.ndarray, variances, name: str, model: NoiseModel, progress, device, clock):
    """The guide g(u), its SURE terms (float16: they only feed the mean and a smoothed
    map), and g(u + eps b) - g(u) for the final stage's divergence.

    The divergence is a finite difference through the whole guide (matching included), with
    the probe b of `_probe` and step `_EPSILON_GUIDE`: on the benchmark crops the SURE
    mean read 0.1534 / 0.1177 / 0.0839 against true squared errors of 0.1697 / 0.1231 /
    0.0938 (Rician 3 / 5 / 9 %, stabilised units).
    """
    if name == "bm4d":
        import bm4d  # optional extra; checked where the config is read

        psd = 1.0 if model.white else _psd(model, u.shape)
        run = lambda x: bm4d.bm4d(x, psd).astype(np.float32)  # noqa: E731
        guide = run(u)
        clock.lap("guide")
        eps = 0.1  # BM4D is not linear in u: a small step
        change = run(_shifted(u, eps)) - guide
    else:
        guide = collaborative.denoise(
            u, variances, report=stage_parts(progress, "guide, slab"), device=device
        )
        clock.lap("guide")
        eps = _EPSILON_GUIDE
        change = collaborative.denoise(
            _shifted(u, eps),
            variances,
            report=stage_parts(progress, "guide's risk estimate, slab"),
            device=device,
        )
        change -= guide
    terms = _sure_terms(u, guide, change, eps, model).astype(np.float16)
    clock.lap("guide's risk estimate")
    return guide, terms, change


def _shifted(u: np.ndarray, eps: float) -> np.ndarray:
    """u + eps b, b the probe (one new array)."""
    b = _probe(u.shape)
    b *= eps
    b += u
    return b


def significant_residual(residual: np.ndarray, model: NoiseModel) -> np.ndarray:
    """The residual where, smoothed, it stands out of the noise (stabilised units); else 0.

    Noise alone, smoothed by the Gaussian g, has std sqrt(sum_d rho(d) (g * g)(d)), with
    rho the noise correlation (a delta for white noise).
    """
    smooth = gaussian_filter(residual, _DETECT_VOX, mode="wrap")  # its std: the same everywhere
    detected = np.abs(smooth) > _DETECT_Z * _smoothed_noise_std(model)
    keep = binary_dilation(detected) if detected.any() else detected
    return np.where(keep, gaussian_filter(residual, _RETURN_VOX), 0.0).astype(np.float32)


def _smoothed_noise_std(model: NoiseModel) -> float:
    lag = 0 if model.white else model.correlation.shape[0] // 2
    size = 2 * (int(4 * _DETECT_VOX + 0.5) + lag + 1) + 1  # the whole kernel, and room
    delta = np.zeros((size,) * 3)
    delta[(size // 2,) * 3] = 1.0
    g = gaussian_filter(delta, _DETECT_VOX, mode="constant")
    if model.white:
        return float(np.sqrt(np.sum(g**2)))
    rho = model.correlation
    variance = 0.0
    for index in np.ndindex(rho.shape):
        shift = tuple(i - lag for i in index)
        moved = np.roll(g, shift, axis=(0, 1, 2))
        variance += rho[index] * float(np.sum(g * moved))
    return float(np.sqrt(max(variance, 0.0)))


def _psd(model: NoiseModel, shape) -> np.ndarray:
    """The noise power spectrum on the volume's grid (BM4D's sigma_psd form)."""
    kernel = np.zeros(shape)
    c = model.correlation
    lag = c.shape[0] // 2
    for index in np.ndindex(c.shape):
        kernel[tuple(i - lag for i in index)] = c[index]
    return np.abs(np.fft.fftn(kernel))


def _final_sure_terms(u, x, variances, model, moved_pilot, report=None, device=None) -> np.ndarray:
    """SURE terms of x = W(u; pilot), the pilot moved as u moves: p(u + eps b) ~ p + dp.

    Each member is g + f_theta(u): dp is the guide's change plus the members' change at
    their final weights; how the trained weights themselves change with u is left out
    (it would need refitting).
    """
    eps = _EPSILON_GUIDE
    moved = collaborative.bayes(
        _shifted(u, eps), moved_pilot, variances, report=report, device=device
    )
    moved -= x
    return _sure_terms(u, x, moved, eps, model)


def _probe(shape) -> np.ndarray:
    """The risk estimate's probe b ~ N(0, I): the same for every stage (a fixed seed).

    Drawn in slabs along the first axis (the same numbers as one draw of the whole
    shape, without its float64 copy of the volume)."""
    rng, out = np.random.default_rng(0), np.empty(shape, dtype=np.float32)
    rows = max(1, 2**20 // max(1, int(np.prod(shape[1:]))))
    for first in range(0, shape[0], rows):
        out[first : first + rows] = rng.standard_normal(out[first : first + rows].shape)
    return out


def _sure_terms(u, x, difference, eps: float, model: NoiseModel) -> np.ndarray:
    """Per-voxel SURE terms (u - x)^2 - 1 + 2 (S b)(h(u + eps b) - h(u)) / eps, b the probe.

    Their mean estimates the mean squared error (stabilised units; the input scores 1);
    a local average of them, the local error (the uncertainty map). In place: two
    whole-volume arrays besides the inputs.
    """
    sb = correlate(torch.from_numpy(_probe(u.shape)), model).numpy()
    sb *= difference
    sb *= 2.0 / eps
    terms = np.subtract(u, x, dtype=np.float32)
    np.square(terms, out=terms)
    terms -= 1.0
    terms += sb
    return terms
