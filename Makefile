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

# The main job: the Snakemake workflow over config/samples.tsv (data_samples/; capped
# iterations in config/config.yaml so that a 2-core CPU finishes in minutes), then
# Snakemake's HTML report of every scan and the summary.
run: $(STAMP)
	$(BIN)/snakemake --cores all
	$(BIN)/snakemake --report results/report.html

# Debian packages some tests need (installed when run as root; else those tests skip).
system-deps:
	bash .ci/system-deps

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
