# medalign: `make help` lists the targets. Every target installs what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install install-gpu test test-gpu-pins test-slow test-all lint format curriculum bench docs clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $@

install: $(STAMP) ## Create .venv and install medalign (torch pinned first, then -e ".[dev]")

# CUDA machines: the CUDA torch vllm 0.31 pins (torch 2.13.0 from PyPI), then
# -e ".[dev,gpu]" (vllm, liger-kernel), all under constraints-gpu.txt. FLASH_ATTN=1 also
# builds flash-attn (needs nvcc; slow). It marks the CPU install done too, so `make test`
# does not swap torch back. Without a CUDA GPU (nvidia-smi lists none) it stops in one
# line before anything is written.
GPU_STAMP := $(VENV)/.installed-gpu
FLASH_ATTN ?=
NVIDIA_SMI ?= nvidia-smi
$(GPU_STAMP): pyproject.toml constraints-gpu.txt
	@$(NVIDIA_SMI) -L 2>/dev/null | grep -q '^GPU ' || { echo "make install-gpu: no CUDA GPU on this machine ($(NVIDIA_SMI) -L lists none); nothing installed. Use make install (CPU)." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints-gpu.txt torch
	$(PY) -m pip install -q -c constraints-gpu.txt -e ".[dev,gpu]"
	$(if $(FLASH_ATTN),$(PY) -m pip install -q -c constraints-gpu.txt --no-build-isolation flash-attn)
	@touch $@ $(STAMP)

install-gpu: $(GPU_STAMP) ## CUDA machines: .venv with CUDA torch, vllm, liger-kernel (constraints-gpu.txt)

# The CPU suite under the GPU pins: constraints-gpu.txt's transformers, huggingface-hub,
# numpy, trl, peft ... with the CPU build of the same torch (2.13.0; this machine's
# find-links hold it, as for `make install`) in its own venv, then `make test` there.
# vllm, liger-kernel, flash-attn and triton are CUDA packages: not installed, not tested.
GPU_PINS_VENV := .venv-gpu-pins
GPU_PINS_STAMP := $(GPU_PINS_VENV)/.installed-gpu-pins
$(GPU_PINS_STAMP): pyproject.toml constraints-gpu.txt
	@test -x $(GPU_PINS_VENV)/bin/python || $(PYTHON) -m venv $(GPU_PINS_VENV)
	$(GPU_PINS_VENV)/bin/python -m pip install -q -c constraints-gpu.txt torch
	$(GPU_PINS_VENV)/bin/python -m pip install -q -c constraints-gpu.txt -e ".[dev]"
	$(GPU_PINS_VENV)/bin/python -m pip check
	@touch $@

test-gpu-pins: $(GPU_PINS_STAMP) ## Run make test in .venv-gpu-pins: constraints-gpu.txt's versions, CPU torch
	@touch $(GPU_PINS_VENV)/.installed  # its own install stands for `make install` there
	$(MAKE) --no-print-directory test VENV=$(GPU_PINS_VENV) ARGS="$(ARGS)"

# Two pytest-xdist workers of one torch thread each: on 2 cores 1.6x faster than one
# process whose threads contend (bench/readme_times.py measures it). ARGS="-n 0": serial.
# --dist loadfile: a module's tests on one worker, so its module fixture is built once
# (tests/unit/test_make_test.py; xdist's loadgroup is a no-op under pytest 9).
test: $(STAMP) ## Run the default test suite (about 4.5 min on 2 CPU cores)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile -m "not slow and not gpu and not network" $(ARGS)

test-slow: $(STAMP) ## Run the slow tests (kill/resume, sweeps, DDP, quantized training, wheel, browser)
	$(PY) -m pytest -m "slow and not gpu and not network" $(ARGS)

test-all: $(STAMP) ## Run every test this machine can run
	$(PY) -m pytest -m "not gpu and not network" $(ARGS)

lint: $(STAMP) ## ruff check + format check
	$(VENV)/bin/ruff check medalign tests bench docs
	$(VENV)/bin/ruff format --check medalign tests bench docs

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix medalign tests bench docs
	$(VENV)/bin/ruff format medalign tests bench docs

# The embedded default: the curriculum on the synthetic world, whose model reads the
# world's textbook once (10-13 min the first time) and is cached. Real models and data:
# python -m medalign experiment=curriculum model=... data_root=...
curriculum: $(STAMP) ## Run the whole curriculum on the synthetic world (offline; experiment=world)
	$(PY) -m medalign experiment=world $(ARGS)

# After `make install-gpu` the bench extra installs under the GPU pins (never the CPU torch).
BENCH_CONSTRAINTS = $(if $(wildcard $(GPU_STAMP)),constraints-gpu.txt,constraints.txt)
bench: $(STAMP) ## Run the benchmarks: bench/results.json and bench/RESULTS.md
	$(PY) -m pip install -q -c $(BENCH_CONSTRAINTS) -e ".[dev,bench]"
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) bench/run.py

# Offline: no plugin or theme asset needs the network. --strict: a broken link, anchor or
# a page left out of the navigation fails the build.
docs: $(STAMP) ## Check the generated config reference, then build the docs site into site/
	$(PY) docs/gen_config_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

clean: ## Remove caches and the built docs (keeps runs/ and .venv)
	rm -rf .pytest_cache .ruff_cache site
