# hubmirror — one place for setup, checks, tests, the demo, build and deploy.
# `make` alone prints this help. `make check` runs exactly what CI runs.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# checkov pins boto3 and packaging below what the project uses: it gets a venv of its own.
SCAN_VENV := .venv-scan
# asl-validator (npm), the definition's second validator, pinned by tools/asl/package-lock.json.
ASL_TOOLS := tools/asl
# The Lambda runtime is python3.13: develop, test and build with it.
PYTHON313 ?= $(shell (PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null) || python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export SAM_CLI_TELEMETRY := 0

.PHONY: help setup system venv asl-tools lint test test-unit test-functional test-e2e check demo bench mutate build deploy clean

help: ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

system: ## Install the Debian packages the local stack needs (registries, buildah, qemu)
	$(SUDO) bash scripts/setup-system.sh

$(VENV)/.installed: pyproject.toml functions/requirements.txt
	@test -n "$(PYTHON313)" || { echo "python3.13 not found (pyenv install 3.13 or apt install python3.13)"; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## Create .venv (python3.13) with the project and its tools

$(SCAN_VENV)/.installed: requirements-scan.txt
	@test -n "$(PYTHON313)" || { echo "python3.13 not found (pyenv install 3.13 or apt install python3.13)"; exit 1; }
	$(PYTHON313) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/python -m pip install --quiet -r requirements-scan.txt
	touch $@

$(ASL_TOOLS)/node_modules/.installed: $(ASL_TOOLS)/package.json $(ASL_TOOLS)/package-lock.json
	cd $(ASL_TOOLS) && npm ci --silent --no-audit --no-fund
	touch $@

asl-tools: $(ASL_TOOLS)/node_modules/.installed ## Install asl-validator (npm) for the unit tests

setup: system venv asl-tools ## Everything: system packages, the virtual environment, asl-validator

lint: venv $(SCAN_VENV)/.installed ## ruff, mypy, sam validate --lint, cfn-lint, checkov (statelint runs in the unit tests)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam validate --lint --template template.yaml
	$(VENV)/bin/cfn-lint template.yaml
	$(SCAN_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --quiet --compact

test-unit: venv asl-tools ## Unit and infrastructure tests (pure logic, the template, IAM, the state machine) and the doctests
	$(VENV)/bin/pytest tests/unit tests/infrastructure functions/hubmirror

test-functional: venv ## Functional tests, and the stand-ins' own tests in tests/devstack (moto, local registries)
	$(VENV)/bin/pytest tests/devstack tests/functional

test-e2e: setup ## End-to-end tests: the real state machine on the local stack
	$(VENV)/bin/pytest tests/e2e

test: setup lint ## The test command: lint, then unit, functional and end-to-end tests and the doctests
	$(VENV)/bin/pytest tests functions/hubmirror

check: test ## What CI runs

demo: setup ## Run the real state machine twice on the local stack; writes .demo/summary.json
	$(PY) -m devstack.demo

bench: setup ## Benchmark hubmirror against skopeo sync on the local stack (N=200; BENCH_ARGS="-n 1000")
	$(PY) -m benchmarks.bench $(BENCH_ARGS)
	$(PY) -m benchmarks.spool

mutate: venv ## Mutation exercise: a list of one-line bugs, each must fail a test (MUTATE_ARGS="--only gate")
	$(PY) tools/mutate.py $(MUTATE_ARGS)

build: venv ## sam build (needs python3.13 on PATH)
	PATH="$(dir $(PYTHON313)):$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam build

deploy: build ## sam deploy (uses samconfig.toml; needs AWS credentials)
	$(VENV)/bin/sam deploy

clean: ## Remove build output, caches and the demo's files
	rm -rf .aws-sam .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
