"""Train the spike forecasters on a feature table: walk-forward across days, then the served models.

    python models/train.py --features data/processed/features.parquet [--mlflow-uri URI]

Every product of the table trains one model (the features are scale-free; tau is per product).
Walk-forward (rolling origin, an embargo at every cut) scores the fixed candidate set --
persistence, a z-score rule, a HAR-style ridge and monotone gradient boosting, all forecasting
log sigma_future -- and selects the family with the best geometric-mean PR-AUC ratio to
persistence. The served models are fitted on all rows but the last validation share, which
sets their probability map and the alert threshold of the budget. Writes models/artifacts/
(a folder per model plus summary.json), the walk-forward predictions beside it, and the
validation part (rows no model was fitted on) as <features>_test.parquet. A run whose selected
model does not become @champion writes models/challenger/ instead, so models/artifacts keeps the
champion the API serves.
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
from common.progress import working
from features.labels import sigma_column
from features.replay import write_parquet
from models.artifacts import CHALLENGER_ARTIFACTS, DEFAULT_ARTIFACTS, META_FILE, PREDICTIONS_FILE, SUMMARY_FILE, save_local
from models.data import TableError, labeled_rows, read_table
from models.summary import model_meta, product_lines, run_summary, verdict
from models.training import TrainingSettings, check_settings, train_models

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, help="feature table (default: paths.features in config.yaml)")
    parser.add_argument("--mlflow-uri", help="MLflow tracking URI (default: mlflow.tracking_uri, env MLFLOW_TRACKING_URI)")
    parser.add_argument("--experiment", help="MLflow experiment (default: mlflow.experiment)")
    parser.add_argument("--model-name", help="registered model name (default: mlflow.model_name)")
    parser.add_argument("--no-mlflow", action="store_true", help="only write the local artifacts")
    parser.add_argument("--since", type=pd.Timestamp, metavar="TIME", help="use rows at or after this UTC time")
    parser.add_argument("--until", type=pd.Timestamp, metavar="TIME", help="use rows before this UTC time")
    parser.add_argument("--folds", type=int, help="walk-forward folds (default: models.folds)")
    parser.add_argument("--alert-budget", type=float, help="share of rows that alert (default: models.alert_budget)")
    parser.add_argument("--embargo-s", type=float, help="seconds dropped before each cut (default: models.embargo_s)")
    parser.add_argument("--draws", type=int, help="day-bootstrap draws (default: models.bootstrap_draws)")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="local model folder (default: %(default)s)")
    parser.add_argument("--test-out", type=Path,
                        help="where to write the validation part, the newest rows no model was fitted on "
                             "(default: <features>_test.parquet)")
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


def settings_from(cfg, args: argparse.Namespace | None = None) -> TrainingSettings:
    """The training settings of ``cfg`` with the command line's overrides."""
    m = cfg.models
    pick = (lambda name, default: default if args is None or getattr(args, name) is None else getattr(args, name))
    return TrainingSettings(
        families=tuple(m.families), features=tuple(cfg.features.model_features),
        sigma_col=sigma_column(cfg.label.horizon_s), horizon_s=cfg.label.horizon_s,
        tau_percentile=cfg.label.tau_percentile, alert_budget=pick("alert_budget", m.alert_budget),
        folds=pick("folds", m.folds), initial_share=m.initial_share, validation_share=m.validation_share,
        embargo_s=pick("embargo_s", m.embargo_s), bootstrap_draws=pick("draws", m.bootstrap_draws),
    )


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides={
        "mlflow.tracking_uri": args.mlflow_uri, "mlflow.experiment": args.experiment,
        "mlflow.model_name": args.model_name,
    })
    started = time.perf_counter()
    settings = settings_from(cfg, args)
    check_settings(settings)
    features_path = args.features or Path(cfg.paths.features)
    full = read_table(features_path, ["product_id", *settings.features, settings.sigma_col])
    since, until = _utc(args.since), _utc(args.until)
    inside = pd.Series(True, index=full.index)
    if since is not None:
        inside &= full["ts"] >= since
    if until is not None:
        inside &= full["ts"] < until
    table = full[inside]
    labeled = labeled_rows(table, settings.sigma_col, f"{features_path} (after --since/--until)")
    result = train_models(labeled, settings)
    data = {"table": str(features_path), "since": since.isoformat() if since is not None else None,
            "until": until.isoformat() if until is not None else None, "rows": int(len(table)),
            "labeled_rows": int(len(labeled)), "products": sorted(labeled["product_id"].unique().tolist()),
            "days": sorted(labeled["ts"].dt.strftime("%Y-%m-%d").unique().tolist())}
    metas = {name: model_meta(result, m, data) for name, m in result.models.items()}

    registry: dict | None = None
    runs: dict[str, str] = {}
    parent_run = None
    if not args.no_mlflow:
        from models.registry import log_training, register, use_experiment

        with working(f"MLflow: opening {cfg.mlflow.tracking_uri}"):
            experiment_id = use_experiment(cfg.mlflow.tracking_uri, cfg.mlflow.experiment)
        with working("MLflow: logging the parent run and a child run per family"):
            parent_run, runs, uris = log_training(experiment_id, result, metas, str(features_path),
                                                  uuid.uuid4().hex[:12])
        sel = result.selected
        with working(f"MLflow: registering {cfg.mlflow.model_name}"):
            registry = register(uris[sel], cfg.mlflow.model_name, result.walk.summary[sel]["gm_ratio"], runs[sel],
                                sel, settings.features, _champion_score(result, labeled))
        for name in metas:
            metas[name]["mlflow"] = {"tracking_uri": cfg.mlflow.tracking_uri, "run_id": runs[name],
                                     "parent_run_id": parent_run, "model_uri": uris[name]}
        metas[sel]["mlflow"].update(version=registry["version"], alias=registry["alias"],
                                    registered_as=cfg.mlflow.model_name)

    artifacts = args.artifacts
    if registry is not None and registry["alias"] != "champion" and artifacts == DEFAULT_ARTIFACTS:
        artifacts = CHALLENGER_ARTIFACTS  # models/artifacts keeps the @champion the API serves
    for name, m in result.models.items():
        save_local(artifacts / name, m.estimator, metas[name])
    summary = run_summary(result, data)
    summary["total_seconds"] = time.perf_counter() - started
    summary["mlflow"] = None if registry is None else {
        "tracking_uri": cfg.mlflow.tracking_uri, "experiment": cfg.mlflow.experiment, "parent_run": parent_run,
        "runs": runs, "registry": registry,
    }
    (artifacts / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    write_parquet(result.walk.predictions, artifacts / PREDICTIONS_FILE)
    test_out = args.test_out or features_path.with_name(f"{features_path.stem}_test.parquet")
    write_parquet(result.parts["validation"], test_out)
    _print_report(summary, artifacts, test_out)
    return 0


def _champion_score(result, labeled: pd.DataFrame):
    """How the current champion's family scores on this run's walk-forward (None: it cannot be refitted)."""
    def score_of(family: str, features: tuple[str, ...]) -> float | None:
        s = result.settings
        if family in result.walk.summary and tuple(features) == s.features:
            return result.walk.summary[family]["gm_ratio"]
        if not set(features) <= set(labeled.columns) or not features:
            return None
        from models.walkforward import walk_forward

        log.info("refitting the champion's family %s on this walk-forward", family)
        table = labeled.sort_values("ts", kind="stable").reset_index(drop=True)
        other = walk_forward(table, (family,), tuple(features), s.column, s.sigma_col, s.tau_percentile,
                             s.alert_budget, s.folds, s.initial_share, s.validation_share, s.embargo_s, draws=0)
        return other.summary[family]["gm_ratio"]
    return score_of


def _print_report(summary: dict, artifacts: Path, test_out: Path) -> None:
    wf = summary["walk_forward"]
    taus = ", ".join(f"{p} {t:.3g}" for p, t in summary["taus"].items())
    print(f"tau ({summary['tau_percentile']:g}th percentile of {summary['sigma_column']} on train, per product): {taus}")
    print(f"{'fold':<5} {'first row (UTC)':<17} {'last row':<17} {'rows':>7} {'pos rate':>8}  PR-AUC: "
          + " ".join(f"{f:>11}" for f in wf["families"]))
    for fold in wf["folds"]:
        print(f"{fold['fold']:<5} {fold['test']['start'][:16]:<17} {fold['test']['end'][:16]:<17} "
              f"{fold['test']['rows']:>7} {fold['positive_rate']:>8.3f}          "
              + " ".join(f"{fold['models'][f]['pr_auc']:>11.3f}" for f in wf["families"]))
    for line in verdict(summary):
        print(line)
    for line in product_lines(summary):
        print("  " + line)
    if summary["mlflow"]:
        reg = summary["mlflow"]["registry"]
        print(f"registered {reg['model_name']} version {reg['version']} ({reg['family']}) as @{reg['alias']} "
              f"in {summary['mlflow']['tracking_uri']}: {reg['reason']}")
        if reg["alias"] != "champion" and reg.get("previous_champion"):
            print(f"@champion stays version {reg['previous_champion']['version']}, and so do {DEFAULT_ARTIFACTS} "
                  "and the reports made from it; this run's models are below")
    print(f"artifacts: {artifacts}/<model>/{{model.skops,{META_FILE}}}, {artifacts / SUMMARY_FILE}, "
          f"{artifacts / PREDICTIONS_FILE}")
    print(f"validation part: {test_out}")


if __name__ == "__main__":
    sys.exit(main())
