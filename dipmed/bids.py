"""BIDS: derivative names (the workflow and the BIDS App share them) and the BIDS App's
plan: which anatomical images of which participants, restored to which files.

A BIDS-named input `sub-01[_ses-a][_acq-x]_T1w` gives
`sub-01/[ses-a/]anat/sub-01[_ses-a][_acq-x][_res-1x1x2]_desc-denoised_T1w.nii.gz` and, for
denoising, its uncertainty map `..._desc-uncertainty_T1w.nii.gz`. Any other name keeps
today's flat `<name>_desc-denoised`, which a `.bidsignore` lists (BIDS does not name it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from dipmed.errors import InputError

DESCRIPTIONS = {"denoise": "denoised", "sr": "superres", "inpaint": "inpainted"}
# sub-<label>[_<key>-<value>...]_<suffix>: BIDS entities we can carry over
BIDS_NAME = re.compile(
    r"^(?P<entities>sub-(?P<sub>[A-Za-z0-9]+)(?:_(?P<ses>ses-[A-Za-z0-9]+))?"
    r"(?:_[a-z]+-[A-Za-z0-9]+)*)_(?P<suffix>[A-Za-z0-9]+)$"
)
ANAT_SUFFIXES = ("T1w", "T2w", "FLAIR", "PDw", "T2starw")
NIFTI = re.compile(r"\.nii(\.gz)?$")


@dataclass(frozen=True)
class Derivative:
    """Where a restoration of the input named `stem` goes, relative to the derivatives root."""

    stem: str  # the input's name without .nii/.nii.gz
    task: str
    factor: str = ""  # sr: "FX,FY,FZ"

    @property
    def match(self) -> re.Match | None:
        """The stem read as a BIDS name (None: not one)."""
        return BIDS_NAME.match(self.stem)

    @property
    def bids(self) -> bool:
        return self.match is not None

    @property
    def folder(self) -> str:
        """sub-<label>/[ses-<label>/]anat for a BIDS name; "" (the root) otherwise."""
        match = self.match
        if match is None:
            return ""
        return "/".join(p for p in (f"sub-{match['sub']}", match["ses"], "anat") if p)

    @property
    def desc(self) -> str:
        """The desc- label of the restored volume: denoised, superres or inpainted."""
        return DESCRIPTIONS[self.task]

    @property
    def head(self) -> str:
        """The path up to the desc- entity: folder, entities (res- for sr), or the stem.
        An input's own desc- (and, for sr, res-) entity gives way to the output's."""
        res = f"_res-{self.factor.replace(',', 'x')}" if self.task == "sr" else ""
        match = self.match
        entities = match["entities"] if match else self.stem
        if match:
            dropped = "desc|res" if res else "desc"
            entities = re.sub(rf"_(?:{dropped})-[A-Za-z0-9]+", "", entities)
        return "/".join(p for p in (self.folder, entities + res) if p)

    @property
    def tail(self) -> str:
        """What follows the desc- entity: _<suffix> for a BIDS name, else nothing."""
        match = self.match
        return f"_{match['suffix']}" if match else ""

    def path(self, desc: str = "") -> str:
        """The restored volume's path (without extension) under the derivatives root;
        `desc` replaces the task's description (denoised, superres, inpainted)."""
        return f"{self.head}_desc-{desc or self.desc}{self.tail}"

    def name(self, desc: str = "") -> str:
        """The file name of `path` (without extension)."""
        return self.path(desc).rsplit("/", 1)[-1]

    @property
    def uncertainty(self) -> str:
        """The uncertainty map's path (without extension), beside the restored volume."""
        return self.path("uncertainty")


@dataclass(frozen=True)
class Job:
    """One image of the BIDS dataset and where its restoration goes."""

    source: Path  # the raw image
    relative: str  # its path inside the dataset (BIDS URI: bids:raw:<relative>)
    derivative: Derivative


def find_images(
    root: Path, labels: list[str] | None, suffixes: list[str] | None
) -> list[tuple[Path, str]]:
    """The anatomical NIfTI images (path, path relative to `root`) of the chosen participants
    (all when `labels` is empty), with the chosen suffixes (T1w, T2w, FLAIR, PDw, T2starw).
    InputError for a folder that is not a BIDS dataset or a participant it lacks."""
    check_dataset(root)
    present = sorted(p.name[4:] for p in root.glob("sub-*") if p.is_dir())
    wanted = [label.removeprefix("sub-") for label in labels or []] or present
    missing = [label for label in wanted if label not in present]
    if missing:
        raise InputError(
            f"participant {missing[0]} is not in {root} (it has: {', '.join(present) or 'none'}); "
            "check --participant-label"
        )
    suffixes = suffixes or list(ANAT_SUFFIXES)
    images = []
    for label in wanted:
        for anat in sorted(root.glob(f"sub-{label}/anat")) + sorted(
            root.glob(f"sub-{label}/ses-*/anat")
        ):
            for path in sorted(anat.iterdir()):
                match = BIDS_NAME.match(NIFTI.sub("", path.name))
                if NIFTI.search(path.name) and match and match["suffix"] in suffixes:
                    images.append((path, path.relative_to(root).as_posix()))
    if not images:
        raise InputError(
            f"no anatomical images ({', '.join(suffixes)}) for participant(s) "
            f"{', '.join(wanted) or 'none'} in {root}; check --suffix and --participant-label"
        )
    return images


def check_dataset(root: Path) -> dict:
    """A BIDS dataset's description; InputError naming what is wrong otherwise."""
    if not root.is_dir():
        raise InputError(f"BIDS folder {root} does not exist; give the dataset's root folder")
    description = root / "dataset_description.json"
    try:
        content = json.loads(description.read_text())
    except FileNotFoundError:
        raise InputError(
            f"{root} is not a BIDS dataset (no dataset_description.json); give the "
            "dataset's root folder"
        ) from None
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {description}: {error}; fix the file") from None
    if not isinstance(content, dict):
        raise InputError(f"{description} is not a JSON object; fix the file")
    return content


def plan(
    root: Path, labels: list[str] | None, suffixes: list[str] | None, task: str, factor: str
) -> list[Job]:
    """What the BIDS App restores: one job per image found."""
    return [
        Job(path, relative, Derivative(NIFTI.sub("", path.name), task, factor))
        for path, relative in find_images(root, labels, suffixes)
    ]
