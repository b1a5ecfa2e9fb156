"""The one typed configuration of a restoration; YAML is only its file form.

Unknown keys are rejected by name; values are checked against the defaults' types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from dipmed.errors import InputError
from dipmed.restoration.dip.fit import FitSettings
from dipmed.restoration.guided.settings import GuidedSettings
from dipmed.restoration.networks import NetworkConfig
from dipmed.restoration.sr.internal import InternalSettings

Method = Literal["guided", "dip"]
Mode = Literal["2d", "3d", "auto"]
Device = Literal["auto", "cpu", "cuda"]
LossName = Literal["mse", "l1", "rician"]
Stop = Literal["discrepancy", "variance", "none"]
SliceProfile = Literal["box", "gaussian"]
SrMethod = Literal["auto", "internal", "dip"]
Anchor = Literal["tv", "gaussian", "none"]
SliceAxis = Literal[-1, 0, 1, 2]


@dataclass(frozen=True)
class RestoreConfig:
    method: Method = "guided"  # guided (denoise: guide + deep prior; sr: denoised first) | dip
    mode: Mode = "auto"  # 3D when the volume fits the device, else 2D
    slice_axis: SliceAxis = -1  # 2D mode: array axis to slice along (-1: auto, never downsampled)
    device: Device = "auto"
    seed: int = 0  # one seed for weights, network input and perturbations
    loss: LossName = "mse"  # rician: MR magnitude data (opt-in until benchmarked)
    noise_sigma: float = 0.0  # noise std in image units (HU for CT); 0: estimate it
    memory_gb: float = 0.0  # memory budget (GB) of the plan; 0: 80 % of what is available
    checkpoint_s: float = 300.0  # seconds between checkpoints during a fit (0: every step)
    stop: Stop = "discrepancy"  # the DIP fit's stop rule
    stop_tau: float = 0.85  # discrepancy: stop at misfit <= tau * sigma^2 (see stopping.py)
    stop_patience: int = 100  # variance: epochs without a new minimum before stopping
    slice_profile: SliceProfile = "box"  # super-resolution slice profile
    sr_method: SrMethod = "auto"  # internal (learnt from the scan's own slices) | dip | auto
    # (internal where the output is too large for a whole 3D fit, else dip)
    anchor: Anchor = "tv"  # denoising anchor: tv (edge-preserving) | gaussian | none (plain DIP)
    anchor_sigma: float = 0.0  # gaussian anchor std in voxels; 0: chosen from the noise
    network: NetworkConfig = field(default_factory=NetworkConfig)
    fit: FitSettings = field(default_factory=FitSettings)
    guided: GuidedSettings = field(default_factory=GuidedSettings)
    internal: InternalSettings = field(default_factory=InternalSettings)

    def __post_init__(self) -> None:
        _check_choices(self, "")
        for key, ok, requirement in _BOUNDS:
            value = self
            for part in key.split("."):
                value = getattr(value, part)
            if value is not None and not ok(value):
                raise InputError(f"config key {key} must be {requirement}, got {value!r}")


_BOUNDS = (  # (key, test, what it must be)
    ("anchor_sigma", lambda v: v >= 0, ">= 0"),
    ("noise_sigma", lambda v: v >= 0, ">= 0"),
    ("memory_gb", lambda v: v >= 0, ">= 0"),
    ("checkpoint_s", lambda v: v >= 0, ">= 0"),
    ("stop_tau", lambda v: v > 0, "> 0"),
    ("fit.max_iters", lambda v: v >= 1, ">= 1"),
    ("guided.members", lambda v: v >= 0, ">= 0"),
    ("guided.iterations", lambda v: v >= 0, ">= 0"),
    ("guided.patch", lambda v: v >= 32, ">= 32"),
    ("guided.recorruption", lambda v: v > 0, "> 0"),
    ("guided.recorruptions", lambda v: v >= 1, ">= 1"),
    ("internal.steps", lambda v: v >= 1, ">= 1"),
    ("internal.batch", lambda v: v >= 1, ">= 1"),
    ("internal.patch", lambda v: v >= 16, ">= 16"),
)


def choices(key: str) -> tuple:
    """The allowed values of a setting (dotted key, e.g. "guided.quality"): its Literal
    type's, the one list that the config check and the command line both read."""
    cls, *parents, name = (RestoreConfig, *key.split("."))
    for parent in parents:
        cls = typing.get_type_hints(cls)[parent]
    return typing.get_args(typing.get_type_hints(cls)[name])


def _check_choices(settings, prefix: str) -> None:
    """Every Literal-typed setting (nested settings too) holds one of its values."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value, kind = getattr(settings, f.name), hints[f.name]
        if typing.get_origin(kind) is Literal:
            _choice(prefix + f.name, value, typing.get_args(kind))
        elif dataclasses.is_dataclass(value) and prefix == "":
            _check_choices(value, f"{f.name}.")


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
    if typing.get_origin(kind) is Literal:  # checked against its values in __post_init__
        return value
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
