# Set-up entry points (../shared/CLI.md): `make dev` and `make test` both run `make setup` first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp

.PHONY: setup dev test lint bench simulate report clean

setup: $(STAMP)
	@$(BIN)/budget-worker local fetch

# Re-run only when the project's dependency declarations change (quick otherwise).
$(STAMP): pyproject.toml scripts/install_kclpy.py
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python scripts/install_kclpy.py
	@touch $(STAMP)

dev: setup
	$(BIN)/budget-worker dev --demo

lint: setup
	$(BIN)/ruff check worker tests scripts
	$(BIN)/ruff format --check worker tests scripts
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m benchmarks.projector

# Long runs: one worker process per core, memory of one seed, as many seeds as fit in the budget.
simulate: setup
	$(BIN)/budget-worker simulate --backend moto --seeds 1000 --ops 80 --time-budget 45m

report: setup
	$(BIN)/budget-worker simulate --backend moto --seeds 60 --other-seeds 6 --report docs/RELIABILITY.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
