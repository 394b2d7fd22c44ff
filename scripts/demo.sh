#!/usr/bin/env bash
# The whole modelling job on the bundled real sample, with no Docker and no network:
# replay -> train (MLflow in a local SQLite store) -> score -> drift reports -> evaluation PDF -> docs.
# Run it as `make demo` (which first sets up .venv).
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: bash scripts/demo.sh [-h|--help]

The whole modelling job on the bundled real BTC-USD sample, with no Docker and no network
(about 2 minutes; `make demo` sets up .venv first and runs this):
  1-2  replay the sample and a capture of another day into data/processed/
  3    train baselines, logistic regression and XGBoost; MLflow in sqlite:///mlruns.db;
       register the best (@champion, or @challenger into models/challenger/ if it does not beat it)
  4-5  score the test part and the other day; scoring speed
  6-8  Evidently drift reports, the evaluation PDF, the model card and scoping brief (reports/)
Every output goes to an ignored place, so the run changes no tracked file; `make handoff`
then turns the run into handoff/ and docs/.

Environment: PY (default .venv/bin/python), DEMO_MLFLOW_URI (default sqlite:///mlruns.db).
USAGE
}
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "demo.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
MLFLOW_URI=${DEMO_MLFLOW_URI:-sqlite:///mlruns.db}
SINCE=2025-12-06   # the long night session; the shorter earlier recordings are a different regime
FEATURES=data/processed/features.parquet
TEST=data/processed/features_test.parquet
OTHER=data/processed/features_other_day.parquet
MODEL_NAME=$($PY -c 'from common.config import load_config; print(load_config().mlflow.model_name)')
started=$(date +%s)
last=$started
step() {
    local now; now=$(date +%s)
    [ "$now" -gt "$started" ] && printf '   (%d s; %d s in all)\n' $((now - last)) $((now - started))
    last=$now
    printf '\n== %s\n' "$*"
}

step "1/8 replay the bundled sample (31 files, 2025-11-30 .. 2025-12-06) into the feature table"
$PY scripts/replay.py --raw 'data/sample/btcusd-2025-12/*.ndjson.gz' --out "$FEATURES" --no-progress

step "2/8 replay a capture from another day (2026-04-05) for a separate check"
$PY scripts/replay.py --raw data/sample/btcusd-2026-04-05-frames/BTC_USD.ndjson.gz --out "$OTHER" --no-progress

step "3/8 train baselines, logistic regression and XGBoost; log to MLflow ($MLFLOW_URI); register the best"
$PY models/train.py --features "$FEATURES" --since "$SINCE" --mlflow-uri "$MLFLOW_URI" --test-out "$TEST"

step "4/8 score the test part with the local artifacts, and the other day with models:/$MODEL_NAME@champion"
$PY models/infer.py --features "$TEST" --out reports/predictions_test.parquet
$PY models/infer.py --features "$OTHER" --model "models:/$MODEL_NAME@champion" --mlflow-uri "$MLFLOW_URI" \
    --out reports/predictions_other_day.parquet

step "5/8 scoring speed"
$PY models/infer.py --features "$TEST" --mode benchmark

step "6/8 drift and data summary reports (Evidently)"
$PY scripts/generate_evidently_report.py --features "$FEATURES"

step "7/8 evaluation report (PDF)"
$PY scripts/generate_eval_report.py --other-day "$OTHER"

step "8/8 model card and scoping brief"
$PY scripts/generate_docs.py

cat <<DONE

== done in $(( $(date +%s) - started )) s. Outputs:
  feature tables      $FEATURES, $TEST, $OTHER
  models (no MLflow)  models/artifacts/<model>/{model.skops,model.json}, models/artifacts/summary.json
                      (models/challenger/ instead when this run's best did not beat @champion)
  MLflow store        ${MLFLOW_URI} (artifacts in ./mlartifacts/), registered model $MODEL_NAME
  predictions         reports/predictions_test.parquet, reports/predictions_other_day.parquet
  drift reports       reports/evidently/early_vs_late.html, reports/evidently/train_vs_test.html (+ .json, summary.json)
  evaluation          reports/model_eval.pdf (+ reports/model_eval.json)
  model card, brief   reports/model_card_v1.md, reports/scoping_brief.pdf
  EDA notebook        notebooks/eda.ipynb  (.venv/bin/jupyter lab notebooks/eda.ipynb)
All of these are ignored by git. To hand this run off (handoff/, docs/model_card_v1.md): make handoff

Open the MLflow UI:  make mlflow-ui   (it prints the address of this run's experiment)
DONE
