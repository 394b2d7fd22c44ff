# Every target sets up what it needs: a fresh clone only needs Python 3.11 and make.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.PHONY: help setup test bench replay demo clean

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

test: setup compose-tool  ## the whole test suite: unit, property, golden replays, integration
	$(PY) -m pytest

demo: setup  ## the whole job on the bundled sample, no Docker/network: replay, train (MLflow in sqlite), infer, reports
	bash scripts/demo.sh

replay: setup  ## replay the bundled real sample into data/processed/features.parquet
	$(PY) scripts/replay.py --raw 'data/sample/btcusd-2025-12/*.ndjson.gz' --out data/processed/features.parquet

SOAK_MINUTES ?= 30
BENCH_STEPS := bench_replay.py bench_models.py bench_streaming.py probe_brokers.py load_test.py \
               "bench_outage.py --runs 10" "bench_soak.py --minutes $(SOAK_MINUTES)"

bench: setup  ## benchmarks, about 80 minutes (a 30-minute soak, 10 outage runs); figures go to reports/benchmarks.md
	@failed=""; for step in $(BENCH_STEPS); do \
		echo "== scripts/$$step"; $(PY) scripts/$$step || failed="$$failed scripts/$$step;"; \
	done; [ -z "$$failed" ] || { echo "failed:$$failed see their output above"; exit 1; }

clean:  ## remove generated data and the virtual environment
	rm -rf $(VENV) data/processed/*.parquet .pytest_cache .hypothesis

.PHONY: kafka kafka-down ingest featurize compose-tool

kafka: setup  ## start the local Kafka-compatible broker on localhost:9092 and create the topics (no Docker)
	$(PY) scripts/local_kafka.py start

kafka-down: setup  ## stop the local broker (it keeps topics in memory: they are gone)
	$(PY) scripts/local_kafka.py stop

ingest: setup  ## 15 minutes of live BTC-USD ticks into ticks.raw, mirrored to data/raw/
	$(PY) scripts/ws_ingest.py --pair BTC-USD --minutes 15 --save-disk

featurize: setup  ## live features: ticks.raw -> ticks.features and data/processed/stream/ (Ctrl-C stops)
	$(PY) features/featurizer.py --topic_in ticks.raw --topic_out ticks.features

compose-tool:  ## install Debian's docker-compose when missing (the tests validate docker/compose.yaml with it)
	@command -v docker-compose >/dev/null 2>&1 || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
		echo "installing docker-compose (Debian package) to validate docker/compose.yaml"; \
		{ $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; } \
		|| { echo "could not install docker-compose: run 'apt-get install docker-compose' as root"; exit 1; }; }

.PHONY: serve rollback rollforward serving-status drift load-test

serve: setup  ## the API (http://127.0.0.1:8000/docs) and the live scorer on the local broker (make kafka first)
	$(PY) scripts/serve.py

rollback: setup  ## switch the running API and scorer to the baseline model, and confirm
	$(PY) scripts/rollback.py baseline

rollforward: setup  ## switch the running API and scorer back to the ML model, and confirm
	$(PY) scripts/rollback.py ml

serving-status: setup  ## which variant is asked for, and what the API and the scorer serve
	$(PY) scripts/rollback.py status

drift: setup  ## live drift monitor: last 10 min of ticks.features vs the training rows (metrics on :9102)
	$(PY) scripts/drift_monitor.py

load-test: setup  ## API load test at 25/50/100/200 req/s on loopback; figures to reports/benchmarks.md
	$(PY) scripts/load_test.py
