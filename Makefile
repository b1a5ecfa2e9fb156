# Quick start: `make run` (set up, run the main job on data_samples/) and `make test`.
# Torch: an installed torch in .venv is kept (bring a CUDA build for a GPU); otherwise
# TORCH is installed first. Override: make TORCH="torch==2.13.0 --index-url ..." run
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.dipmed-installed

.PHONY: setup system-deps run test lint samples bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e ".[test,codecs]"
	touch $(STAMP)

# The main job over data_samples/ until the Snakemake workflow lands: describe each
# sample, convert it, and restore both (capped iterations so a 2-core CPU finishes in
# minutes; drop --max-iters for a full fit).
run: $(STAMP)
	$(BIN)/dipmed info data_samples/sub-phantom01_T1w.nii.gz
	$(BIN)/dipmed info data_samples/ct_phantom
	$(BIN)/dipmed convert --overwrite data_samples/ct_phantom results/ct_phantom.nii.gz
	$(BIN)/dipmed denoise --overwrite --max-iters 150 data_samples/sub-phantom01_T1w.nii.gz results/sub-phantom01_desc-denoised_T1w.nii.gz --report results/reports/sub-phantom01_denoise
	$(BIN)/dipmed denoise --overwrite --max-iters 150 data_samples/ct_phantom results/ct_phantom_denoised --report results/reports/ct_phantom_denoise
	$(BIN)/dipmed sr --overwrite --max-iters 100 --factor 1,1,2 data_samples/ct_phantom results/ct_phantom_sr.nii.gz --report results/reports/ct_phantom_sr
	$(BIN)/dipmed summarize --overwrite results/reports/* --out results/summary

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check dipmed tests data_samples benchmarks

# Quality and speed against BM4D, NLM, TV, interpolation (needs ../shared/data).
bench: $(STAMP)
	$(BIN)/python -m pip install -e ".[bench]"
	$(BIN)/python benchmarks/run.py --size $(or $(SIZE),small)

samples: $(STAMP)
	$(BIN)/python data_samples/generate.py

clean:
	rm -rf results .pytest_cache
