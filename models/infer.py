"""Score a feature table with a trained model, or measure scoring speed.

    python models/infer.py --features data/processed/features_test.parquet \\
        [--model models/artifacts | models/artifacts/xgboost | models:/volatility-spike@champion] \\
        [--out reports/predictions.parquet] [--mode score|benchmark]

Score mode writes product_id, ts, score (probability of a spike in the next horizon), sigma
(the forecast of sigma_future), alert (score >= the model's threshold) and label
(sigma_future >= the tau of the row's product, where known),
and prints PR-AUC beside the positive rate when labels exist. Benchmark mode prints rows per
second, one-row latency and the ratio to real time.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from common.config import ConfigError, load_config
from common.logs import setup_logging
from features.labels import sigma_column
from features.replay import write_parquet
from models.artifacts import DEFAULT_ARTIFACTS, ModelLoadError, load_model
from models.data import TableError, read_table
from models.inference import benchmark, label_metrics, predictions

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, required=True, help="feature table to score (Parquet)")
    parser.add_argument("--model", default=str(DEFAULT_ARTIFACTS),
                        help="model folder, artifacts folder (its selected model) or models:/NAME@ALIAS "
                             "(default: %(default)s)")
    parser.add_argument("--mlflow-uri", help="tracking URI for models:/ references (default: mlflow.tracking_uri)")
    parser.add_argument("--out", type=Path, default=Path("reports/predictions.parquet"),
                        help="predictions file in score mode (default: %(default)s)")
    parser.add_argument("--mode", choices=("score", "benchmark"), default="score")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = load_config(args.config, overrides={"mlflow.tracking_uri": args.mlflow_uri})
        model = load_model(args.model, tracking_uri=cfg.mlflow.tracking_uri)
        table = read_table(args.features, model.features)
    except (ConfigError, TableError, ModelLoadError) as exc:
        print(f"infer: {exc}", file=sys.stderr)
        return 2
    log.info("model %s (version %s) from %s; %d rows", model.name, model.version, model.source, len(table))
    if args.mode == "benchmark":
        result = benchmark(model, table)
        print(f"{result['rows']:,} rows covering {result['market_seconds']:.0f} s of market time "
              f"({result['ticks_per_market_second']:.2f} ticks/s)")
        print(f"batch: {result['batch_rows_per_s']:,.0f} rows/s = {result['batch_realtime_ratio']:,.0f}x real time")
        print(f"one row at a time: p50 {result['row_latency_ms_p50']:.2f} ms, p95 {result['row_latency_ms_p95']:.2f} ms "
              f"= {result['row_realtime_ratio']:,.0f}x real time")
        print(json.dumps(result))
        return 0
    pred = predictions(model, table, sigma_column(model.meta.get("horizon_s", cfg.label.horizon_s)))
    write_parquet(pred, args.out)
    print(f"scored {len(pred):,} rows with {model.name} (version {model.version}); "
          f"{int(pred['alert'].sum()):,} alerts at threshold {model.threshold:.4f}; wrote {args.out}")
    metrics = label_metrics(pred, model.threshold)
    if metrics is None:
        print("no row has a known future volatility, so no PR-AUC")
    else:
        print(f"labeled rows {metrics['rows']:,}: PR-AUC {metrics['pr_auc']:.3f} "
              f"(positive rate {metrics['positive_rate']:.3f}), ROC-AUC {metrics['roc_auc']:.3f}, "
              f"precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f}, alert rate "
              f"{metrics['alert_rate']:.3f} at each product's tau")
    return 0


if __name__ == "__main__":
    sys.exit(main())
