# Placeholder until the workflow issue: converts each sample with the dipmed CLI.
# Run: snakemake --cores 1


rule all:
    input:
        "results/convert/sub-phantom01_T1w.nii.gz",
        "results/convert/ct_phantom.nii.gz",


rule convert:
    input:
        lambda w: "data_samples/" + ("sub-phantom01_T1w.nii.gz" if w.name.startswith("sub-") else w.name),
    output:
        "results/convert/{name}.nii.gz",
    log:
        "results/logs/convert_{name}.log",
    shell:
        "dipmed convert --overwrite {input} {output} > {log} 2>&1"
