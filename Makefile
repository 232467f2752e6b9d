# videobatch — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: help install run test test-fast lint format bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/videobatch: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/videobatch ## create .venv and install videobatch with its test tools

run: install ## serve the API on the embedded default (SQLite + in-process Redis) on :8000
	$(BIN)/videobatch serve

test: install ## every test: the fast tier and the full tier on PostgreSQL + Redis
	$(BIN)/pytest

test-fast: install ## the fast tier only (SQLite + fakeredis, no services needed)
	$(BIN)/pytest -m "not services"

lint: install ## ruff lint and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) var .pytest_cache .ruff_cache
