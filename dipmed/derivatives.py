"""BIDS derivatives: the dataset_description.json that makes a results folder a dataset,
and the .bidsignore naming what dipmed writes there that BIDS does not name."""

from __future__ import annotations

import json
from pathlib import Path

from dipmed import __version__
from dipmed.io.paths import atomic_output

BIDS_VERSION = "1.10.0"


def write_dataset_description(
    folder: Path, source: dict | None = None, ignore: list[str] | None = None
) -> Path:
    """Write `folder`/dataset_description.json (DatasetType derivative, GeneratedBy dipmed;
    `source`: the raw dataset as {"Name", "URL"}, which `Sources` keys name `bids:raw:`) and,
    for `ignore` patterns, `folder`/.bidsignore."""
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
    if source:
        description["SourceDatasets"] = [{"URL": source["URL"]}]
        description["DatasetLinks"] = {"raw": source["URL"]}
    folder.mkdir(parents=True, exist_ok=True)
    if ignore:
        with atomic_output(folder / ".bidsignore") as tmp:
            tmp.write_text("".join(f"{pattern}\n" for pattern in ignore))
    target = folder / "dataset_description.json"
    with atomic_output(target) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n")
    return target
