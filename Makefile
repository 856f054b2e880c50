# The two commands: `make run` (local stack, demo data) and `make test` (everything, then tests).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: run test lint bench venv test-deps run-deps clean help
.DEFAULT_GOAL := help

help:
	@echo "make run    - the local stack: engine with demo traffic, Prometheus, alerts, mail sink, console"
	@echo "make test   - install what the tests need, then run the whole suite"
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
	@scripts/ensure-system-packages.sh postgresql redis-server prometheus chromium

run: venv run-deps
	$(PY) scripts/run_local.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy billing_engine alerts dashboard

test: venv test-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

bench: venv test-deps
	$(PY) -m bench

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
