# Set-up entry points (README.md): `make dev` and `make test` both run `make setup` first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
# KCL=full (default): amazon-kclpy with its KCL jars and the production launcher jar, both
# built from Maven Central. KCL=interface: for a machine that cannot reach Maven Central, the
# amazon_kclpy protocol side only and no launcher (`run --driver kcl` then has nothing to run).
KCL ?= full
STAMP := $(VENV)/.setup-$(KCL)
LAUNCHER_JAR := launcher/target/budget-worker-launcher.jar
ELASTICMQ := tests/elasticmq/target/lib/.fetched
# --compile-bytecode: a process that cannot write __pycache__ (PYTHONDONTWRITEBYTECODE, a
# read-only install) would otherwise compile botocore & co. from source on every start, and
# every test, benchmark and shard child starts a few (benchmarks/startup.py measures it).
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --compile-bytecode --extra dev
ifeq ($(KCL),full)
SYNC += --extra kcl
SETUP_NEEDS := $(STAMP) $(LAUNCHER_JAR) $(ELASTICMQ)
else ifeq ($(KCL),interface)
SETUP_NEEDS := $(STAMP)
else
$(error KCL must be full or interface)
endif

.PHONY: setup dev test lint lint-infra docs bench simulate report mutants clean lock lambda-package

setup: $(SETUP_NEEDS)
	@command -v javac >/dev/null 2>&1 || { echo "make setup: javac is required (a JDK 17+, e.g. apt-get install openjdk-17-jdk-headless): the tests compile the launcher's LauncherConfig" >&2; exit 1; }
	@$(BIN)/budget-worker local fetch

# The pinned uv (hash-checked), which installs everything else from uv.lock.
$(UV): scripts/uv-requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --require-hashes -r scripts/uv-requirements.txt
	@touch $@

# Exactly the lock: `--locked` refuses to run when pyproject.toml and uv.lock disagree.
# Re-run only when they change (quick otherwise).
$(STAMP): pyproject.toml uv.lock Makefile $(UV) scripts/install_kclpy.py
	@rm -f $(VENV)/.setup-*
	$(SYNC)
ifeq ($(KCL),interface)
	$(TOOLS)/bin/python scripts/install_kclpy.py $(BIN)/python
endif
	@touch $@

# The production launcher (KCL MultiLangDaemon + DynamoDB Streams adapter), as pinned in its
# pom: Maven runs its JUnit tests, then shades one jar. Rebuilt only when launcher/ changes.
$(LAUNCHER_JAR): launcher/pom.xml $(shell find launcher/src -type f 2>/dev/null)
	@command -v mvn >/dev/null 2>&1 || { echo "make setup: Maven 3.8+ is required to build the KCL launcher (apt-get install maven); without Maven Central, run make setup KCL=interface (no launcher)" >&2; exit 1; }
	cd launcher && mvn -B -q package
	@touch $@

# ElasticMQ (an SQS-compatible server) for the retry-queue tests: its jar and dependencies.
$(ELASTICMQ): tests/elasticmq/pom.xml
	rm -rf tests/elasticmq/target
	cd tests/elasticmq && mvn -B -q dependency:copy-dependencies -DoutputDirectory=target/lib
	@touch $@

# After editing dependencies in pyproject.toml: re-resolve uv.lock (then commit both).
lock: $(UV)
	$(UV) lock

# `make dev DRIVER=lambda`: the same demo through the Lambda handler (event source mapping
# semantics, in-process) instead of the KCL record processor.
DRIVER ?= local
dev: setup
	$(BIN)/budget-worker dev --demo --driver $(DRIVER)

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
	@# checkov drops resources whose Condition is false under the parameters' defaults, so the
	@# Lambda consumer's resources are checked in a copy whose Consumer defaults to lambda.
	@mkdir -p build/infra
	sed 's/^    Default: ecs$$/    Default: lambda/' infra/budget-worker.yaml > build/infra/budget-worker-lambda.yaml
	@grep -q '^    Default: lambda$$' build/infra/budget-worker-lambda.yaml
	$(INFRA_VENV)/bin/checkov --skip-download --quiet --compact -f build/infra/budget-worker-lambda.yaml

test: lint lint-infra
	$(BIN)/pytest

# The Lambda deployment zip (python3.12 by default, LAMBDA_PYTHON=3.11; LAMBDA_ARCH=arm64):
# manylinux wheels for the runtime's platform, no KCL jars; prints the zip's path.
lambda-package: setup
	@$(BIN)/python scripts/lambda_package.py

# docs/CLI.md is generated from the parser (a test fails when it is out of date).
docs: setup
	$(BIN)/python -m worker.cli_reference > docs/CLI.md

bench: setup
	$(SYNC) --extra bench
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.projector
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.end_to_end --lag-through ''
	$(BIN)/python -m benchmarks.end_to_end --workloads '' --out benchmarks/results/lag.json

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
	rm -rf $(VENV) $(TOOLS) $(INFRA_VENV) launcher/target tests/elasticmq/target build .mypy_cache .ruff_cache .pytest_cache .hypothesis
