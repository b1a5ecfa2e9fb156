"""BIDS derivatives: the dataset_description.json that makes a results folder a dataset."""

from __future__ import annotations

import json
from pathlib import Path

from dipmed import __version__
from dipmed.io.paths import atomic_output

BIDS_VERSION = "1.10.0"


def write_dataset_description(folder: Path) -> Path:
    """Write `folder`/dataset_description.json (DatasetType derivative, GeneratedBy dipmed)."""
    description = {
        "Name": "dipmed restorations",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "dipmed",
                "Version": __version__,
                "Description": "Deep Image Prior denoising, super-resolution and inpainting",
            }
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "dataset_description.json"
    with atomic_output(target) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n")
    return target
