"""Super-resolution by internal learning (the scan's own slices teach the network)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli
from dipmed.config import load_config
from dipmed.errors import InputError
from dipmed.phantom import mr_phantom
from dipmed.restoration.dip.anchor import project_onto
from dipmed.restoration.operators import Downsample, apply
from dipmed.restoration.restore import Task, restore
from dipmed.restoration.sr import method as internal_method
from dipmed.restoration.sr.internal import applies, upsample_cubic
from dipmed.volume import Volume, world_centre

FAST = {"internal.steps": 200, "internal.batch": 4, "network.features": [8, 8, 16, 16, 32, 8]}


def _psnr(estimate, truth) -> float:
    span = float(truth.max() - truth.min())
    return float(10 * np.log10(span**2 / np.mean((estimate - truth) ** 2)))


@pytest.fixture(scope="module")
def thick_phantom():
    clean = mr_phantom((48, 48, 32)).astype(np.float32)
    thick = apply(Downsample((1, 1, 4)), clean).astype(np.float32)
    affine = np.diag([1.0, 1.0, 4.0, 1.0])
    affine[:3, 3] = [-12.0, 7.0, 30.0]
    return clean, Volume(thick, affine)


def test_internal_sr_beats_cubic_and_back_projected_cubic_and_keeps_the_grid(thick_phantom):
    clean, volume = thick_phantom
    config = load_config(None, sr_method="internal", device="cpu", **FAST)
    result = restore(volume, Task("sr", factors=(1, 1, 4)), config)
    cubic = upsample_cubic(volume.array, (1, 1, 4))
    projected = project_onto(cubic, volume.array, Downsample((1, 1, 4)), 0.0)
    assert result.method == "internal"
    assert result.volume.shape == clean.shape
    assert _psnr(result.volume.array, clean) > _psnr(cubic, clean) + 0.5
    # the network adds to what back-projection alone gives (phantom: +0.5 dB)
    assert _psnr(result.volume.array, clean) > _psnr(projected, clean) + 0.2
    np.testing.assert_allclose(result.baseline, cubic, atol=1e-4)
    assert result.volume.spacing == pytest.approx((1.0, 1.0, 1.0))
    np.testing.assert_allclose(world_centre(result.volume), world_centre(volume), atol=1e-9)
    # back-projected: the result agrees with the measured slices
    seen = apply(Downsample((1, 1, 4)), result.volume.array)
    assert np.sqrt(np.mean((seen - volume.array) ** 2)) < 0.02 * np.ptp(volume.array)


def test_auto_keeps_the_dip_fit_for_volumes_a_whole_3d_fit_can_take(thick_phantom):
    _, volume = thick_phantom
    config = load_config(None, device="cpu", method="dip", **{"fit.max_iters": 2, **FAST})
    assert restore(volume, Task("sr", factors=(1, 1, 4)), config).method == "dip"


def test_which_volumes_internal_sr_applies_to():
    assert applies((48, 48, 8), (1, 1, 4), (1.0, 1.0, 4.0))
    assert not applies((48, 48, 8), (2, 1, 4), (1.0, 1.0, 4.0))  # two downsampled axes
    assert not applies((48, 20, 8), (1, 1, 4), (1.0, 1.0, 4.0))  # slices too small
    # in-plane 0.5 mm, 5 mm slices to 1 mm: the slices shrink to half their size
    assert not applies((60, 60, 8), (1, 1, 5), (0.5, 0.5, 5.0))
    assert applies((80, 80, 8), (1, 1, 5), (0.5, 0.5, 5.0))


def test_auto_chooses_by_the_output_size_alone_on_every_device():
    # a whole thick-slice scan (197x233x31 -> x124) takes internal sr, a crop the DIP fit,
    # on a CPU and on a GPU alike (the choice never asks the device for its memory)
    config = load_config(None)
    task = Task("sr", factors=(1, 1, 4))
    for shape, expected in (((197, 233, 31), True), ((48, 48, 8), False)):
        volume = Volume(np.zeros(shape, np.float32), np.diag([1.0, 1.0, 4.0, 1.0]))
        assert internal_method.chosen(volume, task, config) is expected


def test_internal_sr_asked_for_where_it_cannot_apply_is_refused(thick_phantom):
    _, volume = thick_phantom
    config = load_config(None, sr_method="internal", device="cpu", **FAST)
    with pytest.raises(InputError, match="sr_method internal needs exactly one downsampled"):
        restore(volume, Task("sr", factors=(2, 1, 4)), config)


def test_the_cli_and_its_report_say_what_ran(tmp_path, capsys, thick_phantom):
    clean, volume = thick_phantom
    source = tmp_path / "thick.nii.gz"
    nib.save(nib.Nifti1Image(volume.array, volume.affine), source)
    config = tmp_path / "fast.yaml"
    config.write_text("internal: {steps: 50, batch: 4}\n")
    code, out, err = run_cli(
        capsys, "sr", source, tmp_path / "sr.nii.gz", "--factor", "1,1,4",
        "--sr-method", "internal", "--config", config, "--report", tmp_path / "report",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["fit"]["rule"]["name"] == "internal"
    assert report["fit"]["iterations"] == 50
    # agrees with the measured slices (the residual of noise-free slices is no noise, so
    # the residual checks do not apply here)
    assert "not_consistent" not in [flag["code"] for flag in report["flags"]]
    rule = report["fit"]["rule"]
    assert rule["rms_misfit"] <= 1.01 * rule["threshold_rms_misfit"]  # float32 rounding
    html = (tmp_path / "report" / "report.html").read_text()
    assert "super-resolved across its slices by internal learning" in html
    assert "learnt from its own slices for 50 steps" in html
    assert nib.load(tmp_path / "sr.nii.gz").shape == clean.shape
