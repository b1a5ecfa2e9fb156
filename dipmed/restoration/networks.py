"""DIP generators from MONAI and the fixed random input they map to a volume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

_DOWNSAMPLINGS = 4  # BasicUNet halves the grid four times: sizes are padded to multiples of 16


@dataclass(frozen=True)
class NetworkConfig:
    """Generator architecture (MONAI BasicUNet, (tri)linear upsampling as in original DIP)."""

    features: tuple[int, ...] = (16, 16, 32, 32, 64, 16)  # channels per level (6 values)
    norm: Literal["batch", "instance", "group"] = "batch"
    activation: Literal["leakyrelu", "relu", "prelu", "elu"] = "leakyrelu"
    input_channels: int = 8  # channels of the fixed noise input z
    input_scale: float = 0.1  # z ~ U(0, input_scale)


def build_generator(spatial_dims: int, config: NetworkConfig) -> nn.Module:
    """A BasicUNet mapping `input_channels` to one output channel."""
    from monai.networks.nets import BasicUNet  # MONAI takes seconds to import: when needed

    return BasicUNet(
        spatial_dims=spatial_dims,
        in_channels=config.input_channels,
        out_channels=1,
        features=config.features,
        act=_ACTIVATIONS[config.activation],
        norm=_NORMS[config.norm],
        upsample="nontrainable",
    )


def padded_size(size: int) -> int:
    """The generator grid size for `size` voxels: a multiple of 16, at least 16."""
    step = 2**_DOWNSAMPLINGS
    return max(step, -(-size // step) * step)


_ACTIVATIONS = {
    "leakyrelu": ("leakyrelu", {"negative_slope": 0.1, "inplace": True}),
    "relu": ("relu", {"inplace": True}),
    "prelu": ("prelu", {}),
    "elu": ("elu", {"inplace": True}),
}
_NORMS = {
    "batch": ("batch", {"affine": True}),
    "instance": ("instance", {"affine": True}),
    "group": ("group", {"num_groups": 4}),
}
