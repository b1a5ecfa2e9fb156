from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"  # installed beside python by the test extra


@pytest.mark.skipif(not RUFF.exists(), reason="ruff not installed (pip install -e .[test])")
def test_ruff_is_clean():
    result = subprocess.run(
        [str(RUFF), "check", "dipmed", "tests", "data_samples", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
