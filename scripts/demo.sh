#!/usr/bin/env bash
# The whole modelling job on the bundled real data, with no Docker and no network:
# replay -> walk-forward + train (MLflow in a local SQLite store) -> score -> independent check on other
# days -> drift calibration and reports -> evaluation PDF -> model card.
# Run it as `make demo` (which first sets up .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
MLFLOW_URI=${DEMO_MLFLOW_URI:-sqlite:///mlruns.db}
FEATURES=data/processed/features.parquet
TEST=data/processed/features_test.parquet
MODEL_NAME=$($PY -c 'from common.config import load_config; print(load_config().mlflow.model_name)')
started=$(date +%s)
step() { printf '\n== %s\n' "$*"; }

step "1/8 replay the bundled Exchange feed (BTC-USD, ETH-USD, SOL-USD, 2025-11-24 .. 27) into the feature table"
$PY scripts/replay.py --raw 'data/sample/exchange-2025-11/*.ndjson.gz' --out "$FEATURES" --no-progress

step "2/8 walk-forward across days, then the served models; log to MLflow ($MLFLOW_URI); register the selected one"
$PY models/train.py --features "$FEATURES" --mlflow-uri "$MLFLOW_URI" --test-out "$TEST"

step "3/8 score the newest rows (the validation part) with the local artifacts and with models:/$MODEL_NAME@champion"
$PY models/infer.py --features "$TEST" --out reports/predictions_test.parquet
$PY models/infer.py --features "$TEST" --model "models:/$MODEL_NAME@champion" --mlflow-uri "$MLFLOW_URI" \
    --out reports/predictions_champion.parquet

step "4/8 scoring speed"
$PY models/infer.py --features "$TEST" --mode benchmark

step "5/8 independent check: other days from other recorders (never used for training or any choice)"
$PY scripts/check_other_days.py

step "6/8 drift: calibrate on the training windows, measure false alarms and regime changes, Evidently reports"
$PY scripts/generate_evidently_report.py

step "7/8 evaluation report (PDF): the walk-forward verdict first"
$PY scripts/generate_eval_report.py

step "8/8 model card and scoping brief"
$PY scripts/generate_docs.py

cat <<DONE

== done in $(( $(date +%s) - started )) s. Outputs:
  feature tables      $FEATURES, $TEST (the validation part)
  models (no MLflow)  models/artifacts/<model>/{model.skops,model.json}, models/artifacts/summary.json,
                      models/artifacts/walk_forward_predictions.parquet
  MLflow store        ${MLFLOW_URI} (artifacts in ./mlartifacts/), registered model $MODEL_NAME
  predictions         reports/predictions_test.parquet, reports/predictions_champion.parquet
  independent check   reports/check_other_days.json
  drift reports       reports/evidently/*.html (+ .json, summary.json)
  evaluation          reports/model_eval.pdf (+ reports/model_eval.json)
  docs                docs/model_card_v1.md, docs/scoping_brief.pdf
  EDA notebook        notebooks/eda.ipynb  (jupyter lab notebooks/eda.ipynb)

Open the MLflow UI:  $PY -m mlflow ui --backend-store-uri ${MLFLOW_URI} --port 5000   then http://127.0.0.1:5000
DONE
