# oO — two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test check lint types pytest install install-dev browser-deps lock openapi bench clean

## run: install what is needed and start the embedded default (SQLite, in-process learner)
run: $(VENV)/.installed
	$(BIN)/oo serve

## test: install dev deps, start PostgreSQL + Redis on loopback, run lint, types and the suite
test: $(VENV)/.installed-dev browser-deps
	infra/scripts/with-services $(MAKE) --no-print-directory check

check: lint types pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types:
	$(BIN)/mypy bandit policies experiments rewards integrations api dashboards

pytest:
	$(BIN)/pytest $(PYTEST_ARGS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(VENV)/bin/python requirements.lock pyproject.toml
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python requirements-dev.lock pyproject.toml
	$(PIP) install -r requirements-dev.lock
	$(PIP) install --no-deps -e .
	touch $@ $(VENV)/.installed

## browser-deps: Debian's chromium for the browser tests (Playwright's own download cannot work here)
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## lock: re-resolve the lock files from pyproject.toml
lock: $(VENV)/.installed-dev
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -o requirements.lock -q
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements-dev.lock -q

## openapi: regenerate docs/openapi.json from the app
openapi: $(VENV)/.installed
	$(BIN)/oo openapi > docs/openapi.json

bench: $(VENV)/.installed-dev
	infra/scripts/with-services $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
