# dipmed batch workflow: restore every scan of the sample sheet (or glob) with its report,
# then summarise. Rules only call the dipmed CLI. Settings: config/config.yaml (schema:
# config/schema.yaml). Local: `snakemake --cores all`; SLURM: `--profile profiles/slurm`.
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from dipmed.errors import InputError
from dipmed.workflow import bids_ignored, load_samples, restore_options

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")

try:
    SAMPLES = load_samples(config["samples"], config["inputs"], config["task"])
except InputError as error:  # a bad sheet: one clear line, no traceback
    raise WorkflowError(f"sample sheet: {error}") from None
RESULTS = config["results"]
envvars:
    "PATH",


# jobs call `dipmed` from the environment that runs Snakemake (here and on cluster nodes)
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
RESOURCES = config["resources"]
MEMORY_SHARE = 0.85  # of a job's mem_mb given to dipmed's memory plan


# denoised samples also get a per-voxel uncertainty map when restore.uncertainty is on;
# samples with format dicom get a derived DICOM series folder instead of NIfTI
UNCERTAIN = [n for n, s in SAMPLES.items() if s.task == "denoise" and config["restore"]["uncertainty"]]
DICOM = [n for n, s in SAMPLES.items() if s.format == "dicom"]


def one_of(names):
    """A wildcard constraint: exactly one of `names` ("" allowed), or nothing at all."""
    return f"(?:{'|'.join(re.escape(n) for n in names)})" if names else "(?!)"


def sample_of(w):
    """The sample whose outputs the wildcards name (desc is fixed in the uncertainty rules)."""
    return SAMPLES[f"{w.head}_desc-{getattr(w, 'desc', 'denoised')}{w.tail}"]


def job_file(folder, extension, uncertain):
    """A restore job's log or benchmark file: the same wildcards as its outputs."""
    desc = "denoised" if uncertain else "{desc}"
    return f"{RESULTS}/{folder}/{{head}}_desc-{desc}{{tail}}.{extension}"


def restore_outputs(uncertain, dicom):
    """The outputs of the restore rule for its samples (one wildcard pattern: head, desc and
    tail around the desc- entity, so that the uncertainty map's desc-uncertainty fits it): a
    NIfTI volume with its JSON sidecar, or (dicom) a derived DICOM series folder; the
    uncertainty map (uncertain); the report."""
    mine = [s.derivative for n, s in SAMPLES.items() if (n in UNCERTAIN) == uncertain and (n in DICOM) == dicom]
    head = f"{{head,{one_of(sorted({d.head for d in mine}))}}}"
    descs = sorted({d.desc for d in mine})
    # only denoising writes an uncertainty map: its rules fix desc (every output needs
    # every wildcard, and the map's desc is its own)
    desc = "denoised" if uncertain else f"{{desc,{one_of(descs)}}}"
    tail = f"{{tail,{one_of(sorted({d.tail for d in mine}))}}}"
    name = f"{head}_desc-{desc}{tail}"
    base = f"{RESULTS}/dipmed/{name}"
    files = dict(volume=f"{base}.nii.gz", sidecar=f"{base}.json")
    if dicom:
        files = dict(volume=directory(base))
    if uncertain:
        files["uncertainty"] = f"{RESULTS}/dipmed/{head}_desc-uncertainty{tail}.nii.gz"
    return dict(
        **files,
        report_json=f"{RESULTS}/reports/{name}/report.json",
        report_html=report(
            f"{RESULTS}/reports/{name}/report.html",
            caption="config/report/restore.rst",
            category="Scans",
            labels=lambda w: {"scan": sample_of(w).sample, "task": sample_of(w).task},
        ),
    )


report: "config/report/workflow.rst"


rule all:
    input:
        [f"{RESULTS}/dipmed/{sample.output}" for sample in SAMPLES.values()],
        [f"{RESULTS}/dipmed/{SAMPLES[name].uncertainty}" for name in UNCERTAIN],
        f"{RESULTS}/dipmed/dataset_description.json",
        f"{RESULTS}/summary.tsv",
        f"{RESULTS}/summary.html",


rule restore:
    input:
        unpack(lambda w: sample_of(w).inputs()),
    output:
        **restore_outputs(uncertain=False, dicom=False),
    params:
        extra="",
        task=lambda w: sample_of(w).task,
        options=lambda w: restore_options(sample_of(w), config),
        report=lambda w, output: os.path.dirname(output.report_json),
        # the memory plan's budget: the job's memory, less a share for the report
        memory=lambda w, resources: f"{MEMORY_SHARE * resources.mem_mb / 1024:.2f}",
    log:
        job_file("logs/restore", "log", uncertain=False),
    benchmark:
        job_file("benchmarks/restore", "tsv", uncertain=False)
    threads: RESOURCES["threads"]
    resources:
        mem_mb=lambda w, attempt: RESOURCES["mem_mb"] * attempt,
        runtime=lambda w, attempt: RESOURCES["runtime"] * attempt,
        gpu=RESOURCES["gpu"] or int(config["restore"]["device"] == "cuda"),
    retries: RESOURCES["retries"]
    conda:
        "config/envs/dipmed.yaml"
    shell:
        "dipmed {params.task} {input.scan:q} {output.volume:q} --report {params.report:q}"
        " --overwrite --threads {threads} --memory-gb {params.memory} {params.options}"
        " {params.extra} > {log:q} 2>&1"


use rule restore as restore_with_uncertainty with:
    output:
        **restore_outputs(uncertain=True, dicom=False),
    log:
        job_file("logs/restore", "log", uncertain=True),
    benchmark:
        job_file("benchmarks/restore", "tsv", uncertain=True)
    params:
        extra=lambda w, output: f"--uncertainty {output.uncertainty}",
        task=lambda w: sample_of(w).task,
        options=lambda w: restore_options(sample_of(w), config),
        report=lambda w, output: os.path.dirname(output.report_json),
        memory=lambda w, resources: f"{MEMORY_SHARE * resources.mem_mb / 1024:.2f}",


use rule restore as restore_dicom with:
    output:
        **restore_outputs(uncertain=False, dicom=True),


use rule restore_with_uncertainty as restore_dicom_with_uncertainty with:
    output:
        **restore_outputs(uncertain=True, dicom=True),


rule summary:
    input:
        expand(f"{RESULTS}/reports/{{name}}/report.json", name=SAMPLES),
    output:
        tsv=f"{RESULTS}/summary.tsv",
        html=report(
            f"{RESULTS}/summary.html", caption="config/report/summary.rst", category="Summary"
        ),
    params:
        out=lambda w, output: os.path.dirname(output.tsv),
    log:
        f"{RESULTS}/logs/summary.log",
    conda:
        "config/envs/dipmed.yaml"
    shell:
        "dipmed summarize --overwrite {input:q} --out {params.out:q} > {log:q} 2>&1"


rule dataset_description:
    output:
        f"{RESULTS}/dipmed/dataset_description.json",
    params:
        folder=lambda w, output: os.path.dirname(output[0]),
        # what BIDS does not name (DICOM folders, non-BIDS sample ids) goes in .bidsignore
        ignore=" ".join(bids_ignored(SAMPLES)),
    log:
        f"{RESULTS}/logs/dataset_description.log",
    conda:
        "config/envs/dipmed.yaml"
    shell:
        "dipmed describe-dataset {params.folder:q} --ignore {params.ignore} > {log:q} 2>&1"
