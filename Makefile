# Two commands on a fresh machine with only Python and make: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest docs bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m trio_parallel_cm

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/pyright

pytest: $(STAMP)
	$(BIN)/python -X dev -m coverage run -m pytest
	$(BIN)/python -m coverage report

# -E rebuilds every page, so that -W sees the warnings of unchanged pages too.
docs: $(STAMP)
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

test: lint typecheck pytest docs

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage docs/_build
