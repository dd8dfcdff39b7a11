# Set-up entry points (README.md): `make dev` and `make test` both run `make setup` first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp

.PHONY: setup dev test lint lint-infra docs bench simulate report mutants clean

setup: $(STAMP)
	@command -v javac >/dev/null 2>&1 || { echo "make setup: javac is required (a JDK 17+, e.g. apt-get install openjdk-17-jdk-headless): the tests compile the launcher's LauncherConfig" >&2; exit 1; }
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
	$(BIN)/ruff check worker tests scripts benchmarks docs/examples
	$(BIN)/ruff format --check worker tests scripts benchmarks docs/examples
	$(BIN)/mypy
	$(BIN)/mypy docs/examples

# cfn-lint and checkov (every checkov suppression carries its reason in the template).
INFRA_VENV := .venv-infra
$(INFRA_VENV)/.stamp: infra/lint-requirements.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install -q --upgrade pip
	$(INFRA_VENV)/bin/python -m pip install -q -r infra/lint-requirements.txt
	@touch $@

lint-infra: $(INFRA_VENV)/.stamp
	$(INFRA_VENV)/bin/cfn-lint infra/budget-worker.yaml
	$(INFRA_VENV)/bin/checkov --skip-download --quiet --compact -f infra/budget-worker.yaml

test: lint lint-infra
	$(BIN)/pytest

# docs/CLI.md is generated from the parser (a test fails when it is out of date).
docs: setup
	$(BIN)/python -m worker.cli_reference > docs/CLI.md

bench: setup
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m benchmarks.projector
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.end_to_end

# Long runs: one worker process per core, memory of one seed, as many seeds as fit in the budget.
simulate: setup
	$(BIN)/budget-worker simulate --backend moto --seeds 1000 --ops 80 --time-budget 45m

report: setup
	$(BIN)/budget-worker simulate --backend moto --seeds 60 --other-seeds 6 --report docs/RELIABILITY.md

# The mutation check of the proof: every planted bug (worker/proof/mutation.py) on a copy of the
# package, 20 seeds of 80 operations each, one process; the result feeds docs/RELIABILITY.md.
mutants: setup
	$(BIN)/python -m worker.proof.mutation run --baseline --seeds 20 --ops 80 --json docs/mutation-runs/$$(date -u +%F)-moto.json

clean:
	rm -rf $(VENV) $(INFRA_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
