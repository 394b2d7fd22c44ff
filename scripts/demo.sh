#!/usr/bin/env bash
# The whole modelling job on the bundled real data, with no Docker and no network:
# replay -> walk-forward + train (MLflow in a local SQLite store) -> score -> independent check on other
# days -> drift calibration and reports -> evaluation PDF -> model card.
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
FEATURES=data/processed/features.parquet
TEST=data/processed/features_test.parquet
MODEL_NAME=$($PY -c 'from common.config import load_config; print(load_config().mlflow.model_name)')
started=$(date +%s)
last=$started
step() {
    local now; now=$(date +%s)
    [ "$now" -gt "$started" ] && printf '   (%d s; %d s in all)\n' $((now - last)) $((now - started))
    last=$now
    printf '\n== %s\n' "$*"
}

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
                      (models/challenger/ instead when this run's best did not beat @champion)
  MLflow store        ${MLFLOW_URI} (artifacts in ./mlartifacts/), registered model $MODEL_NAME
  predictions         reports/predictions_test.parquet, reports/predictions_champion.parquet
  independent check   reports/check_other_days.json
  drift reports       reports/evidently/*.html (+ .json, summary.json)
  evaluation          reports/model_eval.pdf (+ reports/model_eval.json)
  model card, brief   reports/model_card_v1.md, reports/scoping_brief.pdf
  EDA notebook        notebooks/eda.ipynb  (.venv/bin/jupyter lab notebooks/eda.ipynb)
All of these are ignored by git. To hand this run off (handoff/, docs/model_card_v1.md): make handoff

Open the MLflow UI:  make mlflow-ui   (it prints the address of this run's experiment)
DONE
