# Two commands on a fresh machine: `make run` and `make test` (both set up the environment first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov, the chart's security scanner, pins many heavy dependencies of its own: kept out of .venv.
SCAN_VENV ?= .venv-scan
SCAN_STAMP := $(SCAN_VENV)/.installed

# The exact versions and hashes come from the lock files (README.md, "Dependencies"); `make lock` rewrites them.
LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev-lock.txt
# The chart scanner's own environment (.venv-scan), locked from requirements-scan.txt.
SCAN_LOCK := requirements/scan-lock.txt
PIP_VERSION := 26.3
UV_VERSION := $(shell sed -n 's/^ *"uv==\([^"]*\)".*/\1/p' pyproject.toml)
# Python 3.11 on Linux x86_64 with glibc 2.36 (Debian 12: this machine and the images' python:3.11-slim-bookworm).
LOCK_TARGET := --python-version 3.11.7 --python-platform x86_64-manylinux_2_36
LOCK_FLAGS ?=

.PHONY: setup run test lint format ui bench rehearse rehearse-test test-slow lock snapshots clean package

setup: $(STAMP) $(SCAN_STAMP)

# Everything from the dev lock (hash-checked), then the project itself without resolving anything;
# `pip check` fails when the lock no longer satisfies pyproject.toml (run `make lock`).
# The install also builds MLflow's migrated empty store, which every fresh HYBRIDOPS_HOME copies.
$(STAMP): pyproject.toml $(DEV_LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	$(BIN)/python -m hybridops.registry.store_template
	@touch $(STAMP)

$(SCAN_STAMP): $(SCAN_LOCK)
	@test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet pip==$(PIP_VERSION)
	$(SCAN_VENV)/bin/python -m pip install --quiet --require-hashes -r $(SCAN_LOCK)
	$(SCAN_VENV)/bin/python -m pip check
	@touch $(SCAN_STAMP)

run: setup
	$(BIN)/hybridops run

test: setup lint
	$(BIN)/pytest -q --durations=15

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

# The short rehearsal as a test (three months through the whole release; deselected from `make test`).
rehearse-test: setup
	$(BIN)/pytest -q -m rehearsal tests/rehearsal

# The slow group CI runs after `make test`: the rehearsals, concurrent runs and the fault scenarios of minutes.
test-slow: setup
	$(BIN)/pytest -q -m "slow or rehearsal" --durations=25

# Re-resolve pyproject.toml into the two lock files (and requirements-scan.txt into the scanner's), keeping the versions they hold wherever pyproject.toml
# still admits them; `make lock LOCK_FLAGS=--upgrade` moves everything to the newest admitted versions.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml $(LOCK_TARGET) --generate-hashes --custom-compile-command "make lock" \
	  $(LOCK_FLAGS) --quiet -o $(LOCK)
	$(BIN)/uv pip compile pyproject.toml --extra dev -c $(LOCK) $(LOCK_TARGET) --generate-hashes \
	  --custom-compile-command "make lock" $(LOCK_FLAGS) --quiet -o $(DEV_LOCK)
	$(BIN)/uv pip compile requirements-scan.txt $(LOCK_TARGET) --generate-hashes \
	  --custom-compile-command "make lock" $(LOCK_FLAGS) --quiet -o $(SCAN_LOCK)

# Rewrite the generated files the tests compare against (chart goldens, the code location's snapshot,
# the chart's values.yaml and values.schema.json); review the diff before committing it.
snapshots: setup
	$(BIN)/python tests/snapshot_files.py

# The chart as a Helm package (dist/hybridops-<version>.tgz, by Helm's own packager) and the wheel, which
# carries the chart and infra/ (setup.py) so the CLI works without a checkout.
package: setup
	$(BIN)/python -c "import helm_python as h; print(h.package('charts/hybridops', destination='dist'))"
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --quiet . -w dist
	@ls dist

clean:
	rm -rf .hybridops
