"""report.html in a real browser (headless Chromium): it loads offline with every image.

Skipped, with the reason, where Chromium is absent; .ci/system-deps installs it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli_quietly, write_mr_pair

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not found (Debian package chromium; .ci/system-deps)"
)
HARNESS = """<!DOCTYPE html><html><body>
<iframe id="page" src="report/report.html" width="1200" height="900"></iframe>
<pre id="result">pending</pre>
<script>
document.getElementById("page").addEventListener("load", () => {
  const doc = document.getElementById("page").contentDocument;
  const images = [...doc.images];
  document.getElementById("result").textContent = JSON.stringify({
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).length,
    charts: doc.querySelectorAll("svg").length,
    lines: doc.querySelectorAll("svg polyline").length,
    candidates: [...doc.querySelectorAll("h3")].some(h => h.textContent === "Candidates"),
    title: doc.title,
  });
});
</script></body></html>"""


def _chromium(tmp_path, *args: str) -> str:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory):
    """One guided denoising's report, shared by the browser tests."""
    tmp_path = tmp_path_factory.mktemp("browser")
    clean, noisy = write_mr_pair(tmp_path)
    folder = tmp_path / "report"
    args = ["denoise", noisy, tmp_path / "o.nii.gz", "--report", folder]
    code, _, err = run_cli_quietly(*args, "--reference", clean, "--member-steps", "5")
    assert code == 0, err
    return folder


def test_report_loads_with_all_images_in_chromium(tmp_path, report_folder):
    harness = report_folder.parent / "harness.html"  # beside the report it frames
    harness.write_text(HARNESS)
    dom = _chromium(tmp_path, "--dump-dom", harness.as_uri())
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found and found.group(1) != "pending", dom[-500:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    # input/baseline/restored/reference + residual + 2 errors + the uncertainty figure
    # (restored beside the uncertainty map)
    assert result["images"] == 9 and result["broken"] == 0, result
    # guided: one chart, the member's SURE per step (no DIP misfit curve)
    assert result["charts"] == 1 and result["title"].startswith("dipmed denoise")
    assert result["lines"] == 2  # the member's loss and its held-out pair's misfit
    assert result["candidates"]  # the candidates' table with their risks


def test_report_screenshot_shows_the_views(tmp_path, report_folder):
    shot = tmp_path / "shot.png"
    _chromium(
        tmp_path,
        "--hide-scrollbars",
        "--window-size=1200,1600",
        f"--screenshot={shot}",
        (report_folder / "report.html").as_uri(),
    )
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (1600, 1200)
    dark = np.mean(pixels < 30)  # the black backgrounds of the views
    assert 0.02 < dark < 0.6, dark
