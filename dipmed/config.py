"""The one typed configuration of a restoration; YAML is only its file form.

Unknown keys are rejected by name; values are checked against the defaults' types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dipmed.errors import InputError
from dipmed.restoration.dip.fit import FitSettings
from dipmed.restoration.guided.pipeline import QUALITY, GuidedSettings
from dipmed.restoration.networks import NetworkConfig
from dipmed.restoration.sr.internal import InternalSettings


@dataclass(frozen=True)
class RestoreConfig:
    method: str = "guided"  # guided (denoise: guide + SURE prior; sr: denoised first) | dip
    mode: str = "auto"  # 2d | 3d | auto (3D when the volume fits the device, else 2D)
    slice_axis: int = -1  # 2D mode: array axis to slice along (-1: auto, never a downsampled one)
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0  # one seed for weights, network input and perturbations
    loss: str = "mse"  # mse | l1 | rician (MR magnitude data; opt-in until benchmarked)
    noise_sigma: float = 0.0  # noise std in image units (HU for CT); 0: estimate it
    memory_gb: float = 0.0  # memory budget (GB) of the plan; 0: 80 % of what is available
    checkpoint_s: float = 300.0  # seconds between checkpoints during a fit (0: every step)
    stop: str = "discrepancy"  # discrepancy | variance | none
    stop_tau: float = 0.85  # discrepancy: stop at misfit <= tau * sigma^2 (see stopping.py)
    stop_patience: int = 100  # variance: epochs without a new minimum before stopping
    slice_profile: str = "box"  # super-resolution slice profile: box | gaussian
    sr_method: str = "auto"  # super-resolution: internal (learnt from the scan's own slices) | dip
    # | auto (internal where the output is too large for a whole 3D fit, else dip)
    anchor: str = "tv"  # denoising anchor: tv (edge-preserving) | gaussian | none (plain DIP)
    anchor_sigma: float = 0.0  # gaussian anchor std in voxels; 0: chosen from the noise
    network: NetworkConfig = field(default_factory=NetworkConfig)
    fit: FitSettings = field(default_factory=FitSettings)
    guided: GuidedSettings = field(default_factory=GuidedSettings)
    internal: InternalSettings = field(default_factory=InternalSettings)

    def __post_init__(self) -> None:
        _choice("method", self.method, ("guided", "dip"))
        _choice("guided.quality", self.guided.quality, tuple(QUALITY))
        _choice("guided.guide", self.guided.guide, ("collaborative", "bm4d"))
        _choice("guided.precision", self.guided.precision, ("fp32", "bf16"))
        _choice("mode", self.mode, ("2d", "3d", "auto"))
        _choice("device", self.device, ("auto", "cpu", "cuda"))
        _choice("loss", self.loss, ("mse", "l1", "rician"))
        _choice("stop", self.stop, ("discrepancy", "variance", "none"))
        _choice("slice_profile", self.slice_profile, ("box", "gaussian"))
        _choice("sr_method", self.sr_method, ("auto", "internal", "dip"))
        _choice("slice_axis", self.slice_axis, (-1, 0, 1, 2))
        _choice("anchor", self.anchor, ("tv", "gaussian", "none"))
        if (
            self.anchor_sigma < 0
            or self.noise_sigma < 0
            or self.memory_gb < 0
            or self.checkpoint_s < 0
            or self.stop_tau <= 0
            or self.fit.max_iters < 1
            or (self.guided.members is not None and self.guided.members < 0)
            or (self.guided.iterations is not None and self.guided.iterations < 0)
            or self.guided.patch < 32
            or self.internal.steps < 1
            or self.internal.batch < 1
            or self.internal.patch < 16
        ):
            raise InputError(
                "anchor_sigma, noise_sigma, memory_gb and checkpoint_s must be >= 0, stop_tau > 0, "
                "fit.max_iters >= 1, guided.members >= 0, guided.iterations >= 0 and "
                "guided.patch >= 32, internal.steps >= 1, internal.batch >= 1 and "
                "internal.patch >= 16"
            )


def load_config(path: Path | None, **overrides: object) -> RestoreConfig:
    """The config from YAML `path` (or defaults), with non-None `overrides` applied on top."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise InputError(f"cannot read config {path}: {str(error).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise InputError(f"config {path} must be a mapping of keys to values")
    for dotted, value in overrides.items():
        if value is not None:
            *parents, key = dotted.split(".")
            target = data
            for parent in parents:
                target = target.setdefault(parent, {})
            target[key] = value
    return _build(RestoreConfig, data, "")


def as_dict(config: RestoreConfig) -> dict:
    """The resolved config as plain data (for reports and provenance)."""
    return dataclasses.asdict(config)


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise InputError(f"config key {prefix.rstrip('.') or 'root'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(
            f"unknown config key {prefix}{unknown[0]}; known keys: "
            f"{', '.join(prefix + k for k in fields)}"
        )
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _build(kind, value, f"{prefix}{name}.")
        else:
            values[name] = _coerce(kind, value, prefix + name)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise InputError(f"invalid config: {error}") from None


def _coerce(kind, value, name: str):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    origin = typing.get_origin(kind)
    if origin is types.UnionType:  # an optional setting (int | None): either is taken
        origin = None
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(_coerce(typing.get_args(kind)[0], v, name) for v in value)
    expected = origin or kind
    if (
        isinstance(expected, type | types.UnionType)
        and isinstance(value, expected)
        and not (isinstance(value, bool) and expected is not bool)
    ):
        return value
    raise InputError(f"config key {name} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def _choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise InputError(
            f"config key {name} must be one of {', '.join(map(str, allowed))}, got {value!r}"
        )
