# dipmed batch workflow: restore every scan of the sample sheet (or glob) with its report,
# then summarise. Rules only call the dipmed CLI. Settings: config/config.yaml (schema:
# config/schema.yaml). Local: `snakemake --cores all`; SLURM: `--profile profiles/slurm`.
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from dipmed.errors import InputError
from dipmed.workflow import load_samples, restore_options

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


wildcard_constraints:
    name="|".join(re.escape(name) for name in SAMPLES),


# denoised samples also get a per-voxel uncertainty map when restore.uncertainty is on;
# samples with format dicom get a derived DICOM series folder instead of NIfTI
UNCERTAIN = [n for n, s in SAMPLES.items() if s.task == "denoise" and config["restore"]["uncertainty"]]
DICOM = [n for n, s in SAMPLES.items() if s.format == "dicom"]


def one_of(names):
    return "|".join(re.escape(name) for name in names) or "(?!)"


def restore_outputs(uncertain, dicom):
    """The outputs of the restore rule for its samples (one wildcard pattern): a NIfTI volume
    with its JSON sidecar, or (dicom) a derived DICOM series folder; the uncertainty map
    (uncertain); the report."""
    names = [n for n in SAMPLES if (n in UNCERTAIN) == uncertain and (n in DICOM) == dicom]
    name = f"{{name,{one_of(names)}}}"
    base = f"{RESULTS}/dipmed/{name}"
    files = dict(volume=f"{base}.nii.gz", sidecar=f"{base}.json")
    if dicom:
        files = dict(volume=directory(base))
    if uncertain:
        files["uncertainty"] = f"{base}_uncertainty.nii.gz"
    return dict(
        **files,
        report_json=f"{RESULTS}/reports/{name}/report.json",
        report_html=report(
            f"{RESULTS}/reports/{name}/report.html",
            caption="config/report/restore.rst",
            category="Scans",
            labels=lambda w: {"scan": w.name, "task": SAMPLES[w.name].task},
        ),
    )


report: "config/report/workflow.rst"


rule all:
    input:
        [f"{RESULTS}/dipmed/{sample.output}" for sample in SAMPLES.values()],
        expand(f"{RESULTS}/dipmed/{{name}}_uncertainty.nii.gz", name=UNCERTAIN),
        f"{RESULTS}/dipmed/dataset_description.json",
        f"{RESULTS}/summary.tsv",
        f"{RESULTS}/summary.html",


rule restore:
    input:
        unpack(lambda w: SAMPLES[w.name].inputs()),
    output:
        **restore_outputs(uncertain=False, dicom=False),
    params:
        extra="",
        task=lambda w: SAMPLES[w.name].task,
        options=lambda w: restore_options(SAMPLES[w.name], config),
        report=lambda w, output: os.path.dirname(output.report_json),
        # the memory plan's budget: the job's memory, less a share for the report
        memory=lambda w, resources: f"{MEMORY_SHARE * resources.mem_mb / 1024:.2f}",
    log:
        f"{RESULTS}/logs/restore/{{name}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/restore/{{name}}.tsv"
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
    params:
        extra=lambda w, output: f"--uncertainty {output.uncertainty}",
        task=lambda w: SAMPLES[w.name].task,
        options=lambda w: restore_options(SAMPLES[w.name], config),
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
    log:
        f"{RESULTS}/logs/dataset_description.log",
    conda:
        "config/envs/dipmed.yaml"
    shell:
        "dipmed describe-dataset {params.folder:q} > {log:q} 2>&1"
