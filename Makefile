# The two commands a newcomer runs: `make dev` and `make test`. Both work on a bare
# machine with Python 3.11+ and make: the first run creates .venv and installs the
# pinned dependencies; later runs reuse it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed

PACKAGES := libs/billing-common deploy/local $(sort $(dir $(wildcard services/*/pyproject.toml)))
SOURCES := $(addsuffix src,$(filter %/,$(PACKAGES))) libs/billing-common/src deploy/local/src
# Test folders are type-checked one at a time: each has its own conftest.py.
TEST_DIRS := $(sort $(dir $(wildcard libs/*/tests/*.py services/*/tests/*.py deploy/local/tests/*.py tests/*/*.py)))

.PHONY: dev test lint format typecheck unit contracts install clean

$(STAMP): requirements/dev.txt requirements/tools.txt $(wildcard */*/pyproject.toml services/*/pyproject.toml)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/tools.txt
	$(UV) pip install --quiet --python $(PY) -r requirements/dev.txt
	$(UV) pip install --quiet --python $(PY) --no-deps $(addprefix -e ,$(PACKAGES))
	@touch $(STAMP)

install: $(STAMP)

## make dev: the whole platform on the embedded stack, gateway on :3000 (Ctrl-C stops it).
dev: $(STAMP)
	$(PY) -m billing_local.platform --data-dir .local --port 3000

## make test: lint, types, then unit, service and e2e tests.
test: lint typecheck
	$(PY) -m pytest -p no:cacheprovider --timeout 900 libs services deploy tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) contracts/generate.py --check
	$(PY) deploy/docker/generate_dockerfiles.py --check
	$(PY) deploy/k8s/generate.py --check

typecheck: $(STAMP)
	$(VENV)/bin/mypy $(sort $(SOURCES)) bench contracts conftest.py
	@for dir in $(TEST_DIRS); do echo "mypy $$dir"; $(VENV)/bin/mypy $$dir || exit 1; done

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

contracts: $(STAMP)
	$(PY) contracts/generate.py

clean:
	rm -rf .local .mypy_cache .ruff_cache .pytest_cache
