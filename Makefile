# Two commands on a fresh machine: `make run` and `make test` (both set up the environment first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov, the chart's security scanner, pins many heavy dependencies of its own: kept out of .venv.
SCAN_VENV ?= .venv-scan
SCAN_STAMP := $(SCAN_VENV)/.installed

.PHONY: setup run test lint format ui bench clean

setup: $(STAMP) $(SCAN_STAMP)

# The install also builds MLflow's migrated empty store, which every fresh HYBRIDOPS_HOME copies.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m hybridops.registry.store_template
	@touch $(STAMP)

$(SCAN_STAMP): requirements-scan.txt
	@test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/python -m pip install --quiet -r requirements-scan.txt
	@touch $(SCAN_STAMP)

run: setup
	$(BIN)/hybridops run

test: setup lint
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: setup
	$(BIN)/hybridops ui

bench: setup
	$(BIN)/python benchmarks/pipeline.py

rehearse: setup
	$(BIN)/hybridops rehearse --json .hybridops/rehearsal.json

clean:
	rm -rf .hybridops
