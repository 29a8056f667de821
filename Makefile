# faultlens — the two commands of the quick start are `make demo` and `make test`.
# Everything they need is installed from here, so they work on a fresh machine and in CI.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CACHE_DIR ?= $(HOME)/.cache/faultlens
export CACHE_DIR  # scripts/stack.sh (also when pytest calls it) finds the builds here
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Fragments in mk/ add their own targets and append to TEST_DEPS (things `make test` needs
# installed or built before pytest runs, e.g. the real collector stack).
TEST_DEPS :=
include $(wildcard mk/*.mk)
# A bare `make` prints help: without this the first target of an included fragment
# (stack-deps: apt-get and Go builds) would be the default goal.
.DEFAULT_GOAL := help

.PHONY: venv demo test lint typecheck unit bench bench-smoke browser-deps clean help

# The HTML report is checked in a real headless Chromium (Debian's package).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package) for the HTML report tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

TEST_DEPS += browser-deps

help:
	@echo "make demo   run the example pipeline under faultlens (no servers) and show stats + report"
	@echo "make test   install everything the tests need, then lint, type-check and run the whole suite"
	@echo "make bench  ratio benchmarks against the anchors"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench,dev]'
	@touch $@

demo: venv
	$(BIN)/faultlens demo

lint: venv
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: venv
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/python -m pytest -q tests/unit

test: venv $(TEST_DEPS)
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

bench: venv
	$(BIN)/python benchmarks/run.py

bench-smoke: venv
	$(BIN)/python benchmarks/run.py --quick --json /tmp/faultlens-bench-smoke.json

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
