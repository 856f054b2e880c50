# The two commands: `make run` (local stack, demo data) and `make test` (everything, then tests).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Test workers: most tests wait on a server or a subprocess, so three keep two cores busy.
# loadgroup keeps each module that shares one started stack on one worker (docs/development.md).
PYTEST_PARALLEL ?= -n 3 --dist loadgroup

.PHONY: run test test-fast lint bench venv test-deps run-deps clean help
.DEFAULT_GOAL := help

help:
	@echo "make run    - the local stack: engine with demo traffic, Prometheus, alerts, mail sink, console"
	@echo "make test   - install what the tests need, then run the whole suite, in parallel"
	@echo "make test-fast - the fast lane: pure and in-process tests, no subprocesses (< 90 s)"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - ingest, lookup, console and alerts benchmarks against PostgreSQL"

# A venv with the project installed; re-installed when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	@scripts/bootstrap-python.sh "$(PYTHON)" "$(VENV)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

run-deps:
	@scripts/ensure-system-packages.sh prometheus

test-deps:
	@scripts/ensure-system-packages.sh postgresql redis-server prometheus chromium haproxy pgbouncer kubectl

run: venv run-deps
	$(PY) scripts/run_local.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy billing_engine alerts dashboard

test: venv test-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_PARALLEL)

test-fast: venv test-deps
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not processes"

bench: venv test-deps
	$(PY) -m bench

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
