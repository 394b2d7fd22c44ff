"""Train the spike models on a feature table, log them to MLflow and register the best.

    python models/train.py --features data/processed/features.parquet [--mlflow-uri URI]

Time-ordered train / validation / test split with an embargo, tau from the train part,
baselines (persistence, z-score rule), logistic regression and XGBoost. Thresholds and the
model to register are chosen on validation; test is only scored. Writes models/artifacts/
(a folder per model plus summary.json), or models/challenger/ when the best model does not beat
the registered @champion (models/artifacts keeps the champion the API serves), and the test part
as <features>_test.parquet.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from pathlib import Path

import pandas as pd

from common.config import ConfigError, load_config
from common.logs import setup_logging
from common.progress import steps, working
from features.labels import sigma_column
from features.replay import write_parquet
from models.artifacts import CHALLENGER_ARTIFACTS, DEFAULT_ARTIFACTS, META_FILE, SUMMARY_FILE, save_local
from models.data import TableError, labeled_rows, read_table
from models.summary import model_meta, run_summary, verdict
from models.training import compare_to_baselines, train_models

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, help="feature table (default: paths.features in config.yaml)")
    parser.add_argument("--mlflow-uri", help="MLflow tracking URI (default: mlflow.tracking_uri, env MLFLOW_TRACKING_URI)")
    parser.add_argument("--experiment", help="MLflow experiment (default: mlflow.experiment)")
    parser.add_argument("--model-name", help="registered model name (default: mlflow.model_name)")
    parser.add_argument("--no-mlflow", action="store_true", help="only write the local artifacts")
    parser.add_argument("--since", type=pd.Timestamp, metavar="TIME",
                        help="use rows at or after this UTC time (e.g. 2025-12-06 for one market regime)")
    parser.add_argument("--until", type=pd.Timestamp, metavar="TIME", help="use rows before this UTC time")
    parser.add_argument("--embargo-s", type=float, help="seconds dropped before each cut (default: the label horizon)")
    parser.add_argument("--fractions", type=float, nargs=3, default=(0.6, 0.2, 0.2), metavar=("TRAIN", "VAL", "TEST"),
                        help="shares of labeled rows, in time order (default: 0.6 0.2 0.2)")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="local model folder (default: %(default)s)")
    parser.add_argument("--test-out", type=Path, help="where to write the test part (default: <features>_test.parquet)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def _utc(ts: pd.Timestamp | None) -> pd.Timestamp | None:
    if ts is None:
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        return run(args)
    except (ConfigError, TableError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # TrackingError: the MLflow store could not be used
        print(f"train: {exc}", file=sys.stderr)
        return 3


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides={
        "mlflow.tracking_uri": args.mlflow_uri, "mlflow.experiment": args.experiment,
        "mlflow.model_name": args.model_name,
    })
    started = time.perf_counter()
    features_path = args.features or Path(cfg.paths.features)
    sigma_col = sigma_column(cfg.label.horizon_s)
    features = cfg.features.model_features
    full = read_table(features_path, [*features, sigma_col])
    since, until = _utc(args.since), _utc(args.until)
    inside = pd.Series(True, index=full.index)
    if since is not None:
        inside &= full["ts"] >= since
    if until is not None:
        inside &= full["ts"] < until
    table = full[inside]
    labeled = labeled_rows(table, sigma_col, f"{features_path} (after --since/--until)")
    result = train_models(
        labeled, features, sigma_col, cfg.label.horizon_s, cfg.label.tau_percentile,
        embargo_s=args.embargo_s if args.embargo_s is not None else cfg.label.horizon_s,
        fractions=tuple(args.fractions),
    )
    fit_seconds = time.perf_counter() - started
    comparison = compare_to_baselines(result)
    data = {"table": str(features_path), "since": since.isoformat() if since is not None else None,
            "until": until.isoformat() if until is not None else None,
            "rows": int(len(table)), "labeled_rows": int(len(labeled)),
            "sigma_median": float(labeled[sigma_col].median()),
            "outside_window": _outside(full[~inside], sigma_col, result.tau)}
    metas = {name: model_meta(result, m, data) for name, m in result.models.items()}

    registry: dict | None = None
    runs: dict[str, str] = {}
    if not args.no_mlflow:
        from models.registry import log_model_run, register, use_experiment

        with working(f"MLflow: opening {cfg.mlflow.tracking_uri}"):
            experiment_id = use_experiment(cfg.mlflow.tracking_uri, cfg.mlflow.experiment)
        example = result.split.parts["train"].loc[:, list(features)].dropna().head(5).astype(float)
        training_id = uuid.uuid4().hex[:12]
        uris = {}
        for name, m in steps(result.models.items(), "MLflow: logging runs with plots and models", unit="run"):
            runs[name], uris[name] = log_model_run(experiment_id, result, m, metas[name], example, training_id)
        best = result.models[result.best]
        with working(f"MLflow: registering {cfg.mlflow.model_name}"):
            registry = register(uris[result.best], cfg.mlflow.model_name,
                                best.metrics["validation"]["pr_auc"], runs[result.best])
        for name in metas:
            metas[name]["mlflow"] = {"tracking_uri": cfg.mlflow.tracking_uri, "run_id": runs[name], "model_uri": uris[name]}
        metas[result.best]["mlflow"].update(version=registry["version"], alias=registry["alias"],
                                            registered_as=cfg.mlflow.model_name)

    artifacts = args.artifacts
    if registry is not None and registry["alias"] != "champion" and artifacts == DEFAULT_ARTIFACTS:
        artifacts = CHALLENGER_ARTIFACTS  # models/artifacts keeps the @champion the API serves
    for name, m in result.models.items():
        save_local(artifacts / name, m.estimator, metas[name])
    summary = run_summary(result, data, comparison, fit_seconds)
    summary["total_seconds"] = time.perf_counter() - started
    summary["mlflow"] = None if registry is None else {
        "tracking_uri": cfg.mlflow.tracking_uri, "experiment": cfg.mlflow.experiment, "runs": runs, "registry": registry,
    }
    (artifacts / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    test_out = args.test_out or features_path.with_name(f"{features_path.stem}_test.parquet")
    write_parquet(result.split.parts["test"], test_out)
    _print_report(summary, artifacts, test_out)
    return 0


def _outside(rows: pd.DataFrame, sigma_col: str, tau: float) -> dict | None:
    """Rows left out by --since/--until: how many, and how volatile at this run's tau."""
    known = rows[sigma_col].dropna()
    if known.empty:
        return None
    return {"rows": int(len(rows)), "start": rows["ts"].min().isoformat(), "end": rows["ts"].max().isoformat(),
            "sigma_median": float(known.median()), "positive_rate_at_tau": float((known >= tau).mean())}


def _print_report(summary: dict, artifacts: Path, test_out: Path) -> None:
    print(f"tau = {summary['tau']:.4g} ({summary['tau_percentile']:g}th percentile of "
          f"{summary['sigma_column']} on train)")
    for part, rng in summary["split"].items():
        print(f"  {part:<10} {rng['start']} .. {rng['end']}  {rng['rows']:>6} rows")
    print(f"{'model':<12} {'val PR-AUC':>10} {'(pos rate)':>10} {'test PR-AUC':>11} {'(pos rate)':>10} {'test F1':>8}")
    for name, m in summary["models"].items():
        v, t = m["metrics"]["validation"], m["metrics"]["test"]
        print(f"{name:<12} {v['pr_auc']:>10.3f} {v['positive_rate']:>10.3f} {t['pr_auc']:>11.3f} "
              f"{t['positive_rate']:>10.3f} {t['f1']:>8.3f}")
    print(f"selected (best validation PR-AUC): {summary['selected']}")
    for line in verdict(summary):
        print(line)
    if summary["mlflow"]:
        reg = summary["mlflow"]["registry"]
        print(f"registered {reg['model_name']} version {reg['version']} as @{reg['alias']} "
              f"in {summary['mlflow']['tracking_uri']}")
        if reg["alias"] != "champion":
            print(f"@champion stays version {reg['previous_champion']['version']}, and so do {DEFAULT_ARTIFACTS} "
                  "and the reports made from it; this run's models are below")
    print(f"artifacts: {artifacts}/<model>/{{model.skops,{META_FILE}}} and {artifacts / SUMMARY_FILE}")
    print(f"test part: {test_out}")


if __name__ == "__main__":
    sys.exit(main())
