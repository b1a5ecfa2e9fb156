"""One deep-prior member of guided denoising: x = g + f_theta(u), fitted by Monte-Carlo SURE.

f is a MONAI BasicUNet that sees u (so SURE's divergence is not zero), on the volume
flipped as the member asks. A volume that fits in one patch is fitted whole and its
output is the 0.99 moving average of the iterates. A larger volume is fitted on one
random patch per step (memory and step cost set by the patch), the weights are averaged
(0.99) instead, and the output is rendered in overlapping tiles (`tiles`).

SURE terms per voxel, b ~ N(0, I), S the noise correlation (I for white noise):
    (u - x)^2 - 1 + 2 (S b) (x(u + eps b) - x(u)) / eps
The loss is their mean over the trained half of the voxels (`held_out_half`); their mean
over the other half is logged beside it. A divergence at fixed weights does not see
what the weights learnt of the noise, so the trained half's SURE keeps falling as the
network stores noise; the held-out half's follows the true error (benchmarks/README.md),
and it is what the members' risk is read on. Voxels marked IGNORED (MR air, where the
stabilised noise is not Gaussian and SURE is biased) are in neither half, and there the
member is the guide (f is masked to 0: nothing trained it there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from dipmed.restoration.guided.tiles import (
    covers,
    patch_shape,
    random_patch,
    render,
    render_side,
    tile_count,
)
from dipmed.restoration.networks import NetworkConfig, build_generator, padded_size
from dipmed.restoration.noise.model import NoiseModel
from dipmed.restoration.runtime.checkpoint import Checkpoint
from dipmed.restoration.runtime.context import NoCheckpoint
from dipmed.restoration.runtime.precision import autocast, step_if_finite
from dipmed.restoration.runtime.training import Resumable, to_device

_OUTPUT_SCALE = 1e-3  # the generator's last layer starts near zero: the first x is g
_PATCH_DRAWS = 32  # draws for a patch holding trained voxels before one without is taken

TRAINED, HELD_OUT, IGNORED = 0, 1, 2  # a voxel's role in the members' SURE


def held_out_half(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Each voxel's role (uint8, one byte a voxel): a random half HELD_OUT, which no member
    trains on, the other half TRAINED."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=shape, dtype=np.uint8)


def fit_member(
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The member's output, f(u + probe_step probe()) - f(u) at its final weights (for the
    risk estimate of what it pilots), its SURE curves (steps x 2: the trained half's, the
    loss, and the held-out half's, per `roles`; both without the guide's divergence, a constant for
    the weights), and, fitted whole, the output's own per-voxel divergence terms (the
    average of the steps'; None in patches, where the output and the change are of the
    same averaged weights). `probe()` makes the probe (a new float32 array of u's shape).

    `progress(step, sure)` after each step; `rendering(done, total)` counts the tiles.
    With a `checkpoint`, the fit's state is saved under `key` when it is due, and a state
    found there is resumed from (raises Interrupted after a save on a stop request)."""
    U = torch.from_numpy(np.ascontiguousarray(u, dtype=np.float32))[None, None]
    G = torch.from_numpy(np.ascontiguousarray(guide, dtype=np.float32))[None, None]
    net, correction = member_network(
        network, seed, flip, float(U.abs().max()) or 1.0, settings, device
    )
    whole = covers(u.shape, settings.patch)
    fit = _fit_whole if whole else _fit_patches
    H = torch.from_numpy(roles)[None, None]
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    saver = Resumable(checkpoint or NoCheckpoint(), key, key, net, optimizer, generator)
    out, losses = fit(U, G, H, net, correction, model, settings, device, progress, saver)
    divergence = None
    if whole:  # the average of the iterates and its divergence terms
        out, divergence = out[:, :1], out[0, 1].numpy()
    size = patch_shape(u.shape, settings.patch if whole else render_side(settings.patch))
    shifted = torch.from_numpy(probe())[None, None].mul_(probe_step).add_(U)
    plain, change = rendered(correction, U, shifted, H, size, device, rendering)
    del shifted
    if not whole:
        out = plain.add_(G)
    del plain, U, G
    curves = np.asarray(losses, dtype=np.float64).reshape(-1, 2)
    return out[0, 0].cpu().numpy(), change[0, 0].cpu().numpy(), curves, divergence


def member_network(network: NetworkConfig, seed: int, flip, scale: float, settings, device):
    """The member's BasicUNet (its last layer near zero: the first x is g) and its
    correction f(x), on the volume flipped as the member asks: each patch or tile is
    flipped on its way into the network and back on its way out (a flip is its own
    inverse), so the volume itself is never copied."""
    dims = [2 + d for d in flip]

    def flipped(t):
        return torch.flip(t, dims) if dims else t

    torch.manual_seed(seed)
    net = build_generator(3, replace(network, input_channels=1, norm="instance")).to(device)
    with torch.no_grad():
        net.final_conv.weight.mul_(_OUTPUT_SCALE)
        net.final_conv.bias.zero_()
    bf16 = settings.precision == "bf16"  # SURE and the averages stay in fp32

    def correction(x):
        shape = x.shape[2:]
        sizes = zip(reversed(shape), (padded_size(n) for n in reversed(shape)), strict=True)
        padded = F.pad(x / scale, [p for n, g in sizes for p in (0, g - n)], mode="replicate")
        with autocast(device, bf16):
            out = net(flipped(padded))
        return scale * flipped(out.float())[..., : shape[0], : shape[1], : shape[2]]

    return net, correction


def rendered(correction, U, shifted, H, size, device, rendering):
    """(f(u), f(u + eps b) - f(u)) over the whole volume in tiles, both 0 on the ignored
    voxels (the member is the guide there); in place where it can be: each whole-volume
    temporary counts at the peak."""
    tiles = tile_count(U.shape[2:], size)
    counts = [
        None if rendering is None else (lambda d, t, k=k: rendering(k * tiles + d, 2 * t))
        for k in range(2)
    ]
    with torch.no_grad():
        change = render(correction, shifted, size, device=device, report=counts[0])
        plain = render(correction, U, size, device=device, report=counts[1])
        ignored = H == IGNORED
        plain.masked_fill_(ignored, 0.0)
        change.masked_fill_(ignored, 0.0)
        change -= plain
    return plain, change


def _sure(U, x, x_eps, b, roles, model, epsilon):
    """(the trained voxels' SURE, the loss; the held-out voxels'; the divergence terms
    (S b)(x(u + eps b) - x(u)) / eps per voxel), the last two detached. A role with no
    voxel reads 0 (the loss then has no gradient)."""
    sb = correlate(b[0, 0], model)[None, None]
    terms = (U - x) ** 2 - 1.0 + (2.0 / epsilon) * sb * (x_eps - x)
    trained, held = roles == TRAINED, roles == HELD_OUT
    loss = terms[trained].sum() / max(int(trained.sum()), 1)
    with torch.no_grad():
        divergence = sb * (x_eps - x) / epsilon
        held_sure = float(terms[held].sum()) / max(int(held.sum()), 1)
    return loss, held_sure, divergence


def _fit_whole(U, G, H, net, correction, model, settings, device, progress, saver):
    """Whole-volume steps; the output: the moving average of the iterates, and the same
    average of the steps' divergence terms (S b)(x(u + eps b) - x(u)) / eps, the
    average's own divergence (the last weights' change is not: benchmarks/README.md)."""
    U, G, H = U.to(device), G.to(device), H.to(device)
    ignored = H == IGNORED
    optimizer, generator = saver.optimizer, saver.generator
    averages, losses = torch.zeros((1, 2, *U.shape[2:]), device=device), []  # x, divergence
    saved, first = saver.resume()
    if saved is not None:
        averages, losses = saved["average"].to(device), list(saved["losses"])
    for iteration in range(first, settings.iterations + 1):
        b = torch.randn(U.shape, generator=generator).to(device)
        x, divergence, row = _sure_step(U, G, H, ignored, b, correction, model, settings, optimizer)
        with torch.no_grad():
            averages.lerp_(torch.cat([x, divergence], dim=1), 1 - settings.ema)
        losses.append(row)
        progress(iteration, losses[-1][0])
        saver.save(iteration, average=averages, losses=losses)
    averages /= 1 - settings.ema**settings.iterations
    return averages.cpu(), losses


def _fit_patches(U, G, H, net, correction, model, settings, device, progress, saver):
    """One random patch per step; the weights' moving average is loaded at the end."""
    optimizer, generator = saver.optimizer, saver.generator
    size = patch_shape(U.shape[2:], settings.patch)
    averaged, losses = [p.detach().clone() for p in net.parameters()], []
    saved, first = saver.resume()
    if saved is not None:
        averaged, losses = to_device(saved["average"], device), list(saved["losses"])
    for iteration in range(first, settings.iterations + 1):
        where = _patch_with_trained_voxels(H, size, generator)
        u, g, h = U[where].to(device), G[where].to(device), H[where].to(device)
        b = torch.randn(u.shape, generator=generator).to(device)
        ignored = h == IGNORED
        _, _, row = _sure_step(u, g, h, ignored, b, correction, model, settings, optimizer)
        with torch.no_grad():
            for mean, p in zip(averaged, net.parameters(), strict=True):
                mean.lerp_(p, 1 - settings.ema)
        losses.append(row)
        progress(iteration, losses[-1][0])
        saver.save(iteration, average=averaged, losses=losses)
    with torch.no_grad():
        for mean, p in zip(averaged, net.parameters(), strict=True):
            p.copy_(mean)
    return None, losses


def _sure_step(u, g, h, ignored, b, correction, model, settings, optimizer):
    """One Adam step on the trained voxels' SURE with the probe b: (x, its divergence
    terms, (the loss, the held-out voxels' SURE))."""
    x = member_output(g, u, correction, ignored)
    x_eps = member_output(g, u + settings.epsilon * b, correction, ignored)
    sure, held, divergence = _sure(u, x, x_eps, b, h, model, settings.epsilon)
    optimizer.zero_grad(set_to_none=True)
    sure.backward()
    step_if_finite(optimizer)
    return x, divergence, (float(sure.detach()), held)


def member_output(g, u, correction, ignored):
    """x = g + f(u), with f masked to 0 on the `ignored` voxels (the member is g there)."""
    return g + correction(u).masked_fill(ignored, 0.0)


def _patch_with_trained_voxels(roles, size, generator) -> tuple:
    """A random patch's index that holds trained voxels (a patch all air has none), after
    at most `_PATCH_DRAWS` draws."""
    for _ in range(_PATCH_DRAWS):
        where = (..., *random_patch(roles.shape[2:], size, generator))
        if bool((roles[where] == TRAINED).any()):
            break
    return where


def correlate(b: torch.Tensor, model: NoiseModel) -> torch.Tensor:
    """S b: the probe coloured by the noise correlation (S = I for white noise)."""
    if model.white:
        return b
    k = torch.from_numpy(model.correlation).float().to(b.device)[None, None]
    pad = k.shape[-1] // 2
    out = F.conv3d(F.pad(b[None, None], (pad,) * 6, mode="constant"), k)
    return out[0, 0]
