"""What the Snakefile needs and should not compute itself: the sample sheet (or a glob)
read and checked (values, paths that exist, output formats), BIDS-derivatives output names,
and each sample's CLI options."""

from __future__ import annotations

import csv
import glob
import re
from dataclasses import dataclass
from pathlib import Path
from shlex import quote

from dipmed.bids import Derivative
from dipmed.errors import InputError
from dipmed.io.nifti import is_nifti_path

TASKS = ("denoise", "sr", "inpaint")
FORMATS = ("nifti", "dicom")
OPTIONAL = ("factor", "mask", "series", "reference", "format")
PATHS = ("input", "mask", "reference")  # columns naming files or folders the job reads
SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
FACTOR = re.compile(r"^\d+,\d+,\d+$")


@dataclass(frozen=True)
class Sample:
    sample: str  # unique id: file-name safe
    input: str  # NIfTI file or DICOM folder (relative to the working directory)
    task: str = "denoise"
    factor: str = ""  # sr: "FX,FY,FZ"
    mask: str = ""  # inpaint: mask volume on the input grid
    series: str = ""  # DICOM folder with several series: SeriesNumber or UID
    reference: str = ""  # clean volume on the output grid (adds PSNR/SSIM to the report)
    format: str = "nifti"  # output: nifti, or dicom (a derived series folder; DICOM input)

    @property
    def derivative(self) -> Derivative:
        return Derivative(self.sample, self.task, self.factor)

    @property
    def name(self) -> str:
        """The output's path in results/dipmed without extension, BIDS derivatives style
        (sub-01/anat/sub-01_res-1x1x2_desc-superres_T1w) where the id is a BIDS name."""
        return self.derivative.path()

    @property
    def output(self) -> str:
        """The restored volume in results/dipmed: a NIfTI file or a DICOM series folder."""
        return self.name if self.format == "dicom" else f"{self.name}.nii.gz"

    @property
    def uncertainty(self) -> str:
        """The uncertainty map (denoising) in results/dipmed."""
        return f"{self.derivative.uncertainty}.nii.gz"

    @property
    def bids(self) -> bool:
        """BIDS names the outputs (a BIDS-named NIfTI sample); else .bidsignore lists them."""
        return self.derivative.bids and self.format == "nifti"

    def inputs(self) -> dict[str, str]:
        """The files the restore job reads (Snakemake input)."""
        files = {"scan": self.input}
        files |= {key: getattr(self, key) for key in ("mask", "reference") if getattr(self, key)}
        return files

    def options(self) -> str:
        """Per-sample CLI options."""
        parts = [f"--factor {self.factor}"] if self.task == "sr" else []
        parts += [f"--mask {quote(self.mask)}"] if self.task == "inpaint" else []
        parts += [f"--series {quote(self.series)}"] if self.series else []
        parts += [f"--reference {quote(self.reference)}"] if self.reference else []
        return " ".join(parts)


def load_samples(sheet: str, pattern: str = "", task: str = "denoise") -> dict[str, Sample]:
    """Samples by output name, from a glob `pattern` (when given) or the TSV `sheet`."""
    rows = _from_glob(pattern, task) if pattern else _from_sheet(Path(sheet))
    samples = [_check(row, where) for where, row in rows]
    by_name: dict[str, Sample] = {}
    for sample in samples:
        if sample.name in by_name:
            raise InputError(f"two samples give the output name {sample.name}; make ids unique")
        by_name[sample.name] = sample
    if not by_name:
        raise InputError(f"no samples found in {pattern or sheet}")
    return by_name


def restore_options(sample: Sample, config: dict) -> str:
    """The sample's options and the run-wide ones from the workflow config."""
    run = config["restore"]
    parts = [sample.options(), f"--device {run['device']}", f"--seed {run['seed']}"]
    parts += [f"--max-iters {run['max_iters']}"] if run["max_iters"] else []
    parts += [f"--member-steps {run['member_steps']}"] if run.get("member_steps") else []
    parts += [f"--mode {run['mode']}"] if run["mode"] != "auto" else []
    parts += [f"--quality {run['quality']}"] if run.get("quality") else []
    parts += [f"--config {quote(run['config'])}"] if run["config"] else []
    return " ".join(p for p in parts if p)


def bids_ignored(samples: dict[str, Sample]) -> list[str]:
    """.bidsignore patterns for the outputs BIDS does not name (a DICOM series folder, a
    sample id that is not a BIDS name), with their sidecars and uncertainty maps."""
    return [
        f"/{path}*"
        for sample in samples.values()
        if not sample.bids
        for path in (sample.name, sample.derivative.uncertainty)
    ]


def _from_sheet(path: Path) -> list[tuple[str, dict]]:
    try:
        with path.open(newline="") as stream:
            rows = list(csv.DictReader(stream, delimiter="\t"))
    except OSError as error:
        raise InputError(f"cannot read sample sheet {path}: {error.strerror}") from None
    return [(f"{path} row {n}", row) for n, row in enumerate(rows, start=2)]


def _from_glob(pattern: str, task: str) -> list[tuple[str, dict]]:
    paths = sorted(glob.glob(pattern))
    rows = []
    for path in paths:
        sample = re.sub(r"\.nii(\.gz)?$", "", Path(path).name)
        rows.append((f"glob {pattern}", {"sample": sample, "input": path, "task": task}))
    return rows


def _check(row: dict, where: str) -> Sample:
    row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
    unknown = sorted(set(row) - {"sample", "input", "task", *OPTIONAL})
    if unknown:
        raise InputError(
            f"{where}: unknown column {unknown[0]}; columns: sample, input, task, "
            + ", ".join(OPTIONAL)
        )
    where = f"{where} (sample {row.get('sample') or '?'})"
    sample = Sample(**{k: v for k, v in row.items() if v or k in ("sample", "input")})
    _check_values(sample, where)
    _check_paths(sample, where)
    return sample


def _check_values(sample: Sample, where: str) -> None:
    if not SAMPLE_ID.match(sample.sample):
        raise InputError(f"{where}: sample id {sample.sample!r} must be letters, digits, _ . -")
    if sample.task not in TASKS:
        raise InputError(f"{where}: task {sample.task!r} must be one of {', '.join(TASKS)}")
    if sample.task == "sr" and not FACTOR.match(sample.factor):
        raise InputError(
            f"{where}: sr needs factor as FX,FY,FZ (e.g. 1,1,2), got {sample.factor!r}"
        )
    if sample.task == "inpaint" and not sample.mask:
        raise InputError(f"{where}: inpaint needs a mask column")
    if sample.format not in FORMATS:
        raise InputError(f"{where}: format {sample.format!r} must be nifti or dicom (empty: nifti)")
    if not sample.input:
        raise InputError(f"{where}: input is empty")


def _check_paths(sample: Sample, where: str) -> None:
    """Every file or folder the job reads exists (checked before Snakemake plans any job);
    a DICOM output needs a DICOM input."""
    for column in PATHS:
        path = getattr(sample, column)
        if path and not Path(path).exists():
            raise InputError(
                f"{where}: column {column}: {path} does not exist; correct the path "
                f"(relative to the working directory {Path.cwd()}) or remove the row"
            )
    source = Path(sample.input)
    if sample.format == "dicom" and not source.is_dir() and is_nifti_path(source):
        raise InputError(
            f"{where}: format dicom needs DICOM input (a folder or a DICOM file), but "
            f"input {sample.input} is NIfTI; set format to nifti or leave the cell empty"
        )
