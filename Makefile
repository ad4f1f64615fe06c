# Two commands on a fresh machine with only Python and make: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo needs the package alone; `make test` installs everything (and so the demo's too).
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint typecheck pytest docs bench bench-quick bench-profile fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[asyncio,test,docs,bench]"
	touch $(STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
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

# The benchmarks' smoke test: every implementation runs; no timing is checked.
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

test: lint typecheck pytest docs bench-quick

# The full comparison (about 15 minutes), with tables and docs/_static/benchmarks.png.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

bench-profile: $(STAMP)
	$(BIN)/python benchmarks/profile_parallel.py

# A long exploration of the fault-injection harness, both harnesses on both runtimes (an
# hour or more; TPCM_FUZZ_SEED=N for fresh seeds, -k "asyncio" or "not asyncio" for one).
fuzz: $(STAMP)
	TPCM_FUZZ_EXAMPLES=100000 $(BIN)/python -X dev -m pytest -p no:cacheprovider tests/test_harness.py tests/test_graph_harness.py -k "fuzz or exhaustive or small_graph" -q

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage docs/_build
