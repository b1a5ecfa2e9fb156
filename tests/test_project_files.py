"""The files a packager and a citing author read agree with the package."""

from __future__ import annotations

from pathlib import Path

import yaml

import dipmed

ROOT = Path(__file__).resolve().parent.parent


def test_the_licence_is_the_one_pyproject_names():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()


def test_the_citation_names_this_version_and_licence():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == dipmed.__version__ and cff["license"] == "Apache-2.0"
    assert cff["title"].startswith("dipmed") and cff["authors"]
