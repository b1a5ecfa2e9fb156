"""The deep prior x = anchor + f_theta(z): a generator, its fixed random input, in 2D or 3D.

3D mode: one 3D generator over the whole volume; z is padded to the generator's grid
and the output cropped back. 2D mode: one 2D generator shared by all slices along
`axis`; z holds one input per slice, and `forward(index)` renders a batch of slices.
Either way the output is a (1, 1, X', Y', Z') tensor: the volume, or the sub-volume of
the chosen slices along `axis`. With an anchor (see anchor.py) the generator's last
layer starts near zero, so the first output is (almost) the anchor itself.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dipmed.restoration.networks import NetworkConfig, build_generator, padded_size

_ANCHORED_OUTPUT_SCALE = 1e-3  # initial size of the generator's output next to an anchor


class DeepPrior(nn.Module):
    def __init__(
        self,
        shape: tuple[int, int, int],
        *,
        mode: str,
        axis: int,
        config: NetworkConfig,
        generator: torch.Generator,
        anchor: torch.Tensor | None = None,
        output_scale: float = 1.0,
    ):
        super().__init__()
        if mode not in ("2d", "3d"):
            raise ValueError(f"mode must be '2d' or '3d', got {mode!r}")
        self.shape, self.mode, self.axis = tuple(shape), mode, axis
        self.output_scale = float(output_scale)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            self.net = build_generator(3 if mode == "3d" else 2, config)
        grid = [padded_size(n) for n in self._plane_shape()]
        count = 1 if mode == "3d" else shape[axis]
        if count * int(np.prod(grid)) // padded_size(1) ** len(grid) < 2:
            # a one-voxel bottleneck: batch norm needs two values per channel to train
            grid[0] *= 2
        z = torch.rand((count, config.input_channels, *grid), generator=generator)
        self.register_buffer("z", z * config.input_scale)
        self.register_buffer("anchor", None if anchor is None else anchor.reshape(1, 1, *shape))
        if anchor is not None:
            # Near zero, not zero: exactly zero weights would block every gradient to the
            # layers below (a long plateau); Adam's updates do not shrink with the scale.
            with torch.no_grad():
                self.net.final_conv.weight.mul_(_ANCHORED_OUTPUT_SCALE)
                self.net.final_conv.bias.zero_()

    @property
    def slice_count(self) -> int:
        return 1 if self.mode == "3d" else self.shape[self.axis]

    def forward(
        self,
        index: torch.Tensor | None = None,
        *,
        perturb: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        z = self.z if index is None else self.z[index]
        if perturb > 0:
            noise = torch.randn(z.shape, generator=generator, device="cpu").to(z.device)
            z = z + perturb * noise
        out = self.net(z)
        if self.output_scale != 1.0:
            out = out * self.output_scale
        crop = tuple(slice(0, n) for n in self._plane_shape())
        out = out[(slice(None), slice(None), *crop)]
        if self.mode == "2d":
            out = out[:, 0].movedim(0, self.axis).unsqueeze(0).unsqueeze(0)
        if self.anchor is None:
            return out
        anchor = self.anchor if index is None else self.anchor.index_select(2 + self.axis, index)
        return anchor + out

    def _plane_shape(self) -> tuple[int, ...]:
        if self.mode == "3d":
            return self.shape
        return tuple(n for i, n in enumerate(self.shape) if i != self.axis)
