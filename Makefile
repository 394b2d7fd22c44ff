# Every target sets up what it needs: a fresh clone only needs Python 3.11 and make.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.PHONY: help setup test bench replay clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv and install everything (pinned) plus this project, editable

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

test: setup  ## the whole test suite: unit, property, golden replays, integration
	$(PY) -m pytest

replay: setup  ## replay the bundled real sample into data/processed/features.parquet
	$(PY) scripts/replay.py --raw 'data/sample/btcusd-2025-12/*.ndjson.gz' --out data/processed/features.parquet

bench: setup  ## benchmarks; figures go to reports/benchmarks.md
	$(PY) scripts/bench_replay.py

clean:  ## remove generated data and the virtual environment
	rm -rf $(VENV) data/processed/*.parquet .pytest_cache .hypothesis
