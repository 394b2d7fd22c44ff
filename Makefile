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
	@echo "compiling the feature kernels once (numba caches them; about a minute)"
	$(PY) -c "from features.replay import warm_up; warm_up()"
	touch $(STAMP)

test: setup compose-tool kafka-jars  ## the whole test suite: unit, property, golden replays, integration (on Apache Kafka)
	$(PY) -m pytest

demo: setup  ## the whole job on the bundled sample, no Docker/network: replay, train (MLflow in sqlite), infer, reports
	bash scripts/demo.sh

replay: setup  ## replay the bundled training data (Exchange feed, 3 products, 4 days) into data/processed/features.parquet
	$(PY) scripts/replay.py --raw 'data/sample/exchange-2025-11/*.ndjson.gz' --out data/processed/features.parquet

bench: setup  ## benchmarks; figures go to reports/benchmarks.md
	$(PY) scripts/bench_replay.py
	$(PY) scripts/bench_models.py
	$(PY) scripts/bench_streaming.py
	$(PY) scripts/load_test.py

clean:  ## remove generated data and the virtual environment
	rm -rf $(VENV) data/processed/*.parquet .pytest_cache .hypothesis

.PHONY: kafka kafka-down kafka-jars ingest featurize live-demo compose-tool

kafka: setup  ## start the local Kafka-compatible broker on localhost:9092 and create the topics (no Docker)
	$(PY) scripts/local_kafka.py start

kafka-down: setup  ## stop the local broker (it keeps topics in memory: they are gone)
	$(PY) scripts/local_kafka.py stop

kafka-jars: setup  ## fetch Apache Kafka's jars with Maven into .kafka/ (once; the tests run on Apache Kafka)
	$(PY) scripts/local_kafka.py fetch

ingest: setup  ## 15 minutes of live BTC-USD ticks into ticks.raw, mirrored to data/raw/
	$(PY) scripts/ws_ingest.py --pair BTC-USD --minutes 15 --save-disk

featurize: setup  ## live features: ticks.raw -> ticks.features and data/processed/stream/ (Ctrl-C stops)
	$(PY) features/featurizer.py --topic_in ticks.raw --topic_out ticks.features

live-demo: setup  ## the live path offline for 3 minutes: recorded market, broker, ingest, features, scorer, API; prints counts and latency
	$(PY) scripts/live_demo.py --minutes 3

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
