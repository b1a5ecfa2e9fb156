"""Progress a person can follow: every stage is named as it begins, lines keep coming
while work goes on, and a refused input gets its error line alone."""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np

from conftest import run_cli
from dipmed import progress
from dipmed.progress import ProgressPrinter
from dipmed.restoration.runtime.events import Progress, Stage


def test_the_cli_names_each_stage_in_order(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = np.abs(100 + rng.normal(0, 10, (20, 18, 16)) + 1j * rng.normal(0, 10, (20, 18, 16)))
    source = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), source)
    code, _, err = run_cli(
        capsys, "denoise", source, tmp_path / "out.nii.gz", "--member-steps", "4"
    )
    assert code == 0, err
    expected = ["read 20x18x16 voxels", "noise level", "memory plan", "guide, slab", "iteration",
                "final Bayes stage", "writing"]  # fmt: skip
    lines = err.splitlines()
    positions = [next(i for i, line in enumerate(lines) if want in line) for want in expected]
    assert positions == sorted(positions), err
    assert all(line.startswith("dipmed denoise: ") and "elapsed" in line for line in lines)


def test_plain_lines_are_throttled_but_never_silent_for_long(monkeypatch):
    clock = iter(np.arange(0.0, 1000.0, 0.5))  # each event half a second after the last
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    stream = io.StringIO()
    printer = ProgressPrinter(stream, label="t", every=1000)
    for i in range(1, 101):  # 50 s of steps
        printer(Progress(i, 100, 0.5, i * 0.5))
    printer(Stage("next", 0, 3))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("t: iteration 1/100") and "iteration 100/100" in lines[-2]
    assert 5 <= len(lines) <= 8  # every 10 s of 50 s, plus the first, last and stage lines
    assert lines[-1].startswith("t: next 0/3")
