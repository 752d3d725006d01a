# One-line wrappers; the logic lives in the project's code.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: run test lint format bench install install-test clean assets i18n i18n-extract i18n-update i18n-compile i18n-hant

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

# Translations (webui/translations, compiled and committed): after adding t("中文", "English")
# texts, `make i18n` extracts them, updates the three catalogues, fills zh_Hans/en and drafts
# zh_Hant (read it), and compiles. Keywords: the Chinese is the context, the English the msgid.
I18N := webui/translations
I18N_KEYWORDS := --no-default-keywords -k t:1c,2 -k _t:1c,2 -k N_:1c,2

i18n: i18n-extract i18n-update i18n-compile

i18n-extract: install
	$(BIN)/pip install -q -e '.[i18n]'
	$(BIN)/pybabel extract -F babel.cfg $(I18N_KEYWORDS) --no-location --sort-output \
		--project fuhe -o $(I18N)/messages.pot .

i18n-update:
	$(BIN)/pybabel update -i $(I18N)/messages.pot -d $(I18N) --no-fuzzy-matching \
		--ignore-obsolete --width 100
	$(BIN)/python scripts/i18n_fill.py

# Redraft only the empty zh_Hant entries from zh_Hans (corrected ones stay).
i18n-hant:
	$(BIN)/python scripts/i18n_fill.py --hant
	$(BIN)/pybabel compile -d $(I18N) --use-fuzzy

i18n-compile:
	$(BIN)/pybabel compile -d $(I18N) --statistics

# The flow editor's CodeMirror, from the npm registry into webui/static/vendor (committed).
assets:
	cd assets && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) instance/*.sqlite3
