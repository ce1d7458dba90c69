# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup demo test reliability bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(BIN)/python sample-repo/demo.py

test: setup
	$(BIN)/python -m pytest

reliability: setup
	$(BIN)/python -m pytest -m reliability

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) sample-repo/out bench/work
