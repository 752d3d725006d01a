# One-line wrappers; the logic lives in the project's code.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: run test lint format bench install install-test clean assets

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'

run: install
	$(BIN)/flask setup
	$(BIN)/flask run --host 127.0.0.1 --port $${PORT:-5000}

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest

bench: install-test
	$(BIN)/python -m benchmarks

# The flow editor's CodeMirror, from the npm registry into webui/static/vendor (committed).
assets:
	cd assets && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) instance/*.sqlite3
