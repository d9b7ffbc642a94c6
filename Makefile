# Everything a newcomer needs: `make run` serves, `make test` tests, on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

## run: serve against the real KuCoin (or whatever KUCOIN_API_URL says), env from the shell.
run: $(VENV)/.runtime
	$(BIN)/gunicorn -c gunicorn.conf.py app:app

## demo: the whole chain offline: the exchange simulator on :9000 and the service on :8000.
demo: $(VENV)/.runtime
	bash scripts/demo.sh

## test: install what the tests need (redis-server, Python deps), lint, run every test.
test: $(VENV)/.dev
	bash scripts/ensure-system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	node --test tests/js/
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache
