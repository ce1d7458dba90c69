# The README's commands: `make demo`, `make test`, and (optional) `make serve`, the sample's
# dashboard in a browser. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup demo test serve check reliability bench clean

PORT ?= 8000

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml man/git-deploy.1
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,server]'
	# an editable install skips data files: put the manual where `git deploy --help` finds it
	install -D -m 644 man/git-deploy.1 $(VENV)/share/man/man1/git-deploy.1
	touch $@

demo: setup
	$(BIN)/python sample-repo/demo.py

# the suite on every core (pytest-xdist); JOBS=1 runs it in one process
JOBS ?= auto
test: check
	$(BIN)/python -m pytest -n $(JOBS)

serve: setup
	$(BIN)/python sample-repo/serve.py --port $(PORT)

# the quality gates: lint (ruff) and strict types (mypy, configured in pyproject.toml)
check: setup
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

reliability: setup
	GIT_DEPLOY_RACING_WRITES=50 $(BIN)/python -m pytest -m reliability

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) sample-repo/out bench/work
