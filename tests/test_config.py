"""The restoration config: typed, defaults that load, unknown keys rejected by name."""

from __future__ import annotations

import pytest

from dipmed.config import RestoreConfig, as_dict, load_config
from dipmed.errors import InputError


def test_defaults_load_without_a_file():
    assert load_config(None) == RestoreConfig()


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "mode: 2d\nfit:\n  learning_rate: 0.005\nnetwork:\n  features: [8, 8, 16, 16, 32, 8]\n"
    )
    config = load_config(path, seed=7, **{"fit.max_iters": 12})
    assert config.mode == "2d" and config.seed == 7
    assert config.fit.learning_rate == 0.005 and config.fit.max_iters == 12
    assert config.network.features == (8, 8, 16, 16, 32, 8)
    assert as_dict(config)["fit"]["max_iters"] == 12


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rate: 0.1\n", "unknown config key learning_rate"),
        ("fit:\n  lr: 0.1\n", "unknown config key fit.lr"),
        ("fit:\n  max_iters: many\n", "fit.max_iters must be int"),
        ("mode: 4d\n", "mode must be one of"),
        ("guided:\n  quality: fastest\n", "guided.quality must be one of fast, default, best"),
        ("guided:\n  members: -1\n", "config key guided.members must be >= 0, got -1"),
        ("network:\n  norm: layer\n", "config key network.norm must be one of batch, instance"),
        ("- a list\n", "must be a mapping"),
        ("mode: [unclosed\n", "cannot read config"),
    ],
)
def test_bad_config_is_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        load_config(path)
