"""A deep-prior member trained for the final stage, by recorrupted pairs.

The member is the pilot of the final Bayes stage, so it is trained for what that stage
makes of it, with a loss that cannot reward fitting the noise of u: Recorrupted-to-
Recorrupted (Pang et al., CVPR 2021). In stabilised units u = x + n; with z drawn like n
(white, or coloured by the scan's noise spectrum), y = u + a z and t = u - z / a have
independent noises, so for any estimator E computed from y alone

    E |E(y) - t|^2 = E |E(y) - x|^2 + (1 + 1 / a^2)   per voxel.

E(y) here is the Bayes stage of `collaborative` on y (noise variance 1 + a^2), its groups
matched once on the guide of y, its covariances from the pilot's cubes, the pilot
g(y) + f(y) (g the collaborative guide, f the BasicUNet of `member`, last layer near zero:
the first pilot is the guide). `recorruptions` pairs are drawn once from the seed, each
on a random patch (the whole volume when it fits in one), with one guide pass and one
matching each; each step takes the next pair, a random subset of its groups, and the
misfit of their estimates to t (the voxels not ignored). One more pair is drawn and never
trained on: its misfit, logged beside the loss, shows memorising (with fixed pairs the
loss keeps falling after about 60 steps while the final stage gets worse:
benchmarks/README.md, issue 22).

On u the member is g(u) + f(u), the final stage's pilot; its change along the probe is
f's at the final weights (the guide's is added by the pipeline).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from dipmed.restoration.guided import collaborative, matching, transform
from dipmed.restoration.guided.member import (
    IGNORED,
    member_network,
    member_output,
    rendered,
)
from dipmed.restoration.guided.stabiliser import coefficient_variances, coloured
from dipmed.restoration.guided.tiles import covers, patch_shape, random_patch, render_side
from dipmed.restoration.networks import NetworkConfig
from dipmed.restoration.noise.model import NoiseModel
from dipmed.restoration.runtime.checkpoint import Checkpoint
from dipmed.restoration.runtime.context import NoCheckpoint
from dipmed.restoration.runtime.memory import release_freed
from dipmed.restoration.runtime.precision import step_if_finite
from dipmed.restoration.runtime.training import Resumable

GROUPS_PER_STEP = 1024  # groups whose estimates enter one step's loss
HELD_OUT_GROUPS = 256  # groups of the held-out pair whose misfit is logged ...
CHECK_EVERY = 4  # ... every this many steps, and at the last (a check costs a fifth of a step)


@dataclass
class _Pair:
    """One recorrupted pair on a block of u, ready for the steps: y and its guide
    (1, 1, *block), and padded flat y, t and roles with the groups' flat corners."""

    y: torch.Tensor
    guide: torch.Tensor
    ignored: torch.Tensor  # the block's IGNORED voxels: the member is the guide there
    noisy: torch.Tensor  # y padded, flat
    target: torch.Tensor  # padded, flat
    roles: torch.Tensor  # padded, flat
    bases: torch.Tensor  # (groups, K) flat corners of the cubes of each group
    offsets: torch.Tensor  # a cube's voxel offsets in the padded block


def fit_recorrupted_member(
    u: np.ndarray,
    guide: np.ndarray,
    model: NoiseModel,
    settings,
    network: NetworkConfig,
    *,
    roles: np.ndarray,
    seed: int,
    flip: tuple[int, ...],
    device: torch.device,
    probe: Callable[[], np.ndarray],
    probe_step: float,
    progress: Callable[[int, float], None],
    rendering: Callable[[int, int], None] | None = None,
    checkpoint: Checkpoint | None = None,
    key: str = "member",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
    """As `member.fit_member`: (g(u) + f(u), f(u + probe_step probe()) - f(u), the curves,
    None); each pair's guide is `collaborative.denoise`'s plain stage, as g(u) is made here
    (`guide.pairs_guide`). The curves (steps x 2): the misfit less its constant 1 + 1/a^2
    on the step's pair (the loss) and on the pair never trained on (every `CHECK_EVERY`
    steps and at the last; NaN between), each an estimate of the final stage's squared
    error on y (noise variance 1 + a^2)."""
    U = torch.from_numpy(np.ascontiguousarray(u, dtype=np.float32))[None, None]
    H = torch.from_numpy(roles)[None, None]
    net, correction = member_network(
        network, seed, flip, float(U.abs().max()) or 1.0, settings, device
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    saver = Resumable(checkpoint or NoCheckpoint(), key, key, net, optimizer, generator)
    stage = _Stage(model, settings.recorruption, device)
    pairs = stage.pairs(U, H, settings.patch, settings.pairs, seed)
    losses = _fit(pairs, stage, correction, optimizer, saver, settings, progress)
    del pairs
    whole = covers(u.shape, settings.patch)
    size = patch_shape(u.shape, settings.patch if whole else render_side(settings.patch))
    shifted = torch.from_numpy(probe())[None, None].mul_(probe_step).add_(U)
    out, change = rendered(correction, U, shifted, H, size, device, rendering)
    del shifted, U
    out += torch.from_numpy(np.ascontiguousarray(guide, dtype=np.float32))[None, None]
    curves = np.asarray(losses, dtype=np.float64).reshape(-1, 2)
    return out[0, 0].cpu().numpy(), change[0, 0].cpu().numpy(), curves, None


def _fit(pairs, stage, correction, optimizer, saver, settings, progress) -> list:
    """The steps, cycling over the pairs but the last, which no step trains on: its misfit
    is logged beside the loss (both fall while the member learns the image; the loss
    alone falls once it memorises its pairs). The last weights are the member's."""
    trained, held_out = pairs[:-1], pairs[-1]
    losses = []
    saved, first = saver.resume()
    if saved is not None:
        losses = list(saved["losses"])
    for step in range(first, settings.iterations + 1):
        pair = trained[(step - 1) % len(trained)]
        loss = stage.misfit(pair, _pilot(pair, correction), _pick(pair, GROUPS_PER_STEP, saver))
        optimizer.zero_grad(set_to_none=True)
        with _deterministic(loss.device):
            loss.backward()
        step_if_finite(optimizer)
        held = float("nan")
        if step % CHECK_EVERY == 0 or step == settings.iterations:
            with torch.no_grad():
                pick = _pick(held_out, HELD_OUT_GROUPS, saver)
                held = float(stage.misfit(held_out, _pilot(held_out, correction), pick))
        losses.append((float(loss.detach()) - stage.constant, held - stage.constant))
        progress(step, losses[-1][0])
        saver.save(step, losses=losses)
    return losses


@contextmanager
def _deterministic(device: torch.device):
    """On the CPU, backward through the cubes' gather in a fixed order (its default
    accumulation is threaded: the same seed gave results 1e-5 apart)."""
    if device.type != "cpu":
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn)


def _pilot(pair: _Pair, correction) -> torch.Tensor:
    """g(y) + f(y) on the pair's block (the guide where the voxels are ignored)."""
    return member_output(pair.guide, pair.y, correction, pair.ignored)


def _pick(pair: _Pair, count: int, saver) -> torch.Tensor:
    """`count` random groups of the pair (the saver's generator: resumable)."""
    pick = torch.randint(0, len(pair.bases), (count,), generator=saver.generator)
    return pick.to(pair.bases.device)


class _Stage:
    """The Bayes stage on recorrupted blocks: the pairs, and the misfit of a pilot's
    group estimates to the target."""

    def __init__(self, model: NoiseModel, alpha: float, device):
        self.model, self.alpha, self.device = model, alpha, device
        self.settings = collaborative.FINAL  # the stage it trains through
        n = self.settings.cube
        self.variances = coefficient_variances(model) * (1.0 + alpha**2)
        noise = transform.cube_noise(self.variances, n, device)
        eye = torch.eye(len(noise), device=device)
        self.regularised = noise + 1e-5 * float(noise.diagonal().mean()) * eye
        self.constant = 1.0 + 1.0 / alpha**2  # E|n - z / a|^2 per voxel

    def pairs(self, U, H, patch: int, count: int, seed: int) -> list[_Pair]:
        """`count` pairs, each on a random patch (the whole volume when it fits), drawn
        from `seed` alone: the same pairs again on a resume."""
        rng, places = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
        shape = tuple(U.shape[2:])
        size = patch_shape(shape, patch)
        out = []
        for _ in range(count):
            where = (..., *random_patch(shape, size, places))
            out.append(self._pair(U[where][0, 0].numpy(), H[where][0, 0], rng))
            release_freed()  # the pair's guide pass is freed: its pages go back
        return out

    def _pair(self, block: np.ndarray, roles: torch.Tensor, rng) -> _Pair:
        n, device = self.settings.cube, self.device
        z = coloured(rng.standard_normal(block.shape).astype(np.float32), self.model)
        y = block + self.alpha * z
        guide = collaborative.denoise(y, self.variances, device=device)
        target = block - z / self.alpha

        def padded(a) -> torch.Tensor:
            a = torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32)).to(device)
            return matching.pad(a, n)

        guide_pad = padded(guide)
        slabs = matching.reference_slabs(guide_pad.shape, n, self.settings.step)
        search, k = self.settings.search, self.settings.group_bayes
        bases = torch.cat([matching.match(guide_pad, refs, n, search, k) for refs in slabs])
        return _Pair(
            y=torch.from_numpy(y)[None, None].to(device),
            guide=torch.from_numpy(guide)[None, None].to(device),
            ignored=(roles == IGNORED)[None, None].to(device),
            noisy=padded(y).reshape(-1),
            target=padded(target).reshape(-1),
            roles=padded(roles.float().numpy()).reshape(-1).round().to(torch.uint8),
            bases=bases,
            offsets=matching.cube_offsets(guide_pad.shape, n).to(device),
        )

    def misfit(self, pair: _Pair, pilot: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
        """The mean squared misfit to t of the picked groups' estimates, on the voxels
        not ignored."""
        n = self.settings.cube
        flat = pair.bases[pick][:, :, None] + pair.offsets
        y = pair.noisy[flat]
        cubes = matching.pad(pilot[0, 0], n).reshape(-1)[flat]
        centred = cubes - cubes.mean(dim=1, keepdim=True)
        covariance = centred.transpose(1, 2) @ centred / max(1, centred.shape[1] - 1)
        gain = torch.linalg.solve(covariance + self.regularised, covariance)  # A^-1 C
        mean = y.mean(dim=1, keepdim=True)
        misfit = (mean + (y - mean) @ gain - pair.target[flat]) ** 2
        kept = (pair.roles[flat] != IGNORED).to(misfit.dtype)  # a product, not a boolean
        # index: its nonzero and its backward's scatter were a quarter of a step
        return (misfit * kept).sum() / kept.sum().clamp(min=1.0)
