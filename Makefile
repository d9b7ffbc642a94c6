# Everything a newcomer needs: `make run` serves, `make test` tests, on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run demo test lint format bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

PIP := $(BIN)/pip install -q --disable-pip-version-check

# The locks (hashed, generated from pyproject.toml by `make lock`), then the package itself,
# editable, so the commands (pledge-ws, pledge-ws-simulator) run from this checkout.
$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(PIP) --require-hashes -r requirements.txt
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt pyproject.toml | $(BIN)/python
	$(PIP) --require-hashes -r requirements-dev.txt
	$(PIP) --no-deps -e .
	touch $@ $(VENV)/.runtime

## run: serve against the real KuCoin (or whatever KUCOIN_API_URL says), env from the shell.
run: $(VENV)/.runtime
	$(BIN)/pledge-ws

## demo: the whole chain offline: the exchange simulator on :9000 and the service on :8000.
demo: $(VENV)/.runtime
	bash scripts/demo.sh

## test: install what the tests need (system packages, Python deps), lint, run every test.
## Most tests wait on real processes, not the CPU: TEST_WORKERS pytest-xdist workers (one
## test module each at a time) run them side by side on this 2-core machine.
TEST_WORKERS ?= 3
test: $(VENV)/.dev
	bash scripts/ensure-system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: the fan-out benchmark (minutes; not part of the tests).
bench: $(VENV)/.dev
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## lock: regenerate the hashed locks from pyproject.toml (and requirements-build.in).
LOCK := $(BIN)/pip-compile -q --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
	--no-emit-find-links --no-header
lock: $(VENV)/.dev
	$(LOCK) -o requirements.txt pyproject.toml
	$(LOCK) --extra dev -o requirements-dev.txt pyproject.toml
	$(LOCK) -o requirements-build.txt requirements-build.in

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache
