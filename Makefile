# oO — two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OIDC := tests/oidc
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test check lint types pytest system-deps lock openapi bench clean

## run: install what is needed and start the embedded default (SQLite, in-process learner)
run: $(VENV)/.installed
	$(BIN)/oo serve

## test: install dev deps, start PostgreSQL + Redis on loopback, run lint, types and the suite
test: $(VENV)/.installed-dev system-deps $(OIDC)/node_modules/.installed
	infra/scripts/with-services $(MAKE) --no-print-directory check

check: lint types pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types:
	$(BIN)/mypy bandit policies experiments rewards integrations notifier api dashboards

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

## the real OpenID provider the sign-in tests start on loopback (node-oidc-provider, pinned by
## tests/oidc/package-lock.json)
$(OIDC)/node_modules/.installed: $(OIDC)/package.json $(OIDC)/package-lock.json | system-deps
	cd $(OIDC) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## system-deps: Debian packages the tests start for real (Playwright's own browser download
## cannot work here, so the browser tests drive Debian's chromium)
SYSTEM_PACKAGES := chromium:chromium redis-server:redis-server prometheus:prometheus node:nodejs npm:npm
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
system-deps:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
	  command -v "$${entry%%:*}" >/dev/null 2>&1 || missing="$$missing $${entry#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

## lock: re-resolve the lock files from pyproject.toml
lock: $(VENV)/.installed-dev
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -o requirements.lock -q
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements-dev.lock -q

## openapi: regenerate docs/openapi.json from the app
openapi: $(VENV)/.installed
	$(BIN)/oo openapi > docs/openapi.json

## bench: benchmarks against a PostgreSQL with fsync on; figures are printed, never asserted
bench: $(VENV)/.installed-dev system-deps
	OO_TEST_PG_FSYNC=on infra/scripts/with-services sh -c 'for b in bench/bench_*.py; do \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done'

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
