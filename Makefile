# Two commands: `make run` (serve on http://127.0.0.1:8000) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev assets services lint schema clean

run: install assets
	$(BIN)/tandem db upgrade
	$(BIN)/tandem seed
	$(BIN)/tandem serve

test: install-dev assets services lint
	bash scripts/ensure-chromium
	$(BIN)/tandem pq check  # a schema change that breaks a shipped client's trusted document fails here
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# GraphiQL's and the API docs' browser bundles come from pinned npm packages (package-lock.json), never from a
# CDN. --ignore-scripts: nothing we serve needs an install script (swagger-ui-dist pulls in a telemetry one).
assets: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: GraphiQL assets are not installed (the API works; the explorer answers 503)."; fi

# Tests use the real PostgreSQL and Redis on loopback; start them here if they are installed but down.
services:
	@bash scripts/ensure-services

PACKAGES := app auth db loaders resolvers schema rest limits realtime persisted_queries

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy $(PACKAGES)

schema: install
	$(BIN)/tandem schema print > schema.graphql

clean:
	rm -rf $(VENV) node_modules var .pytest_cache
