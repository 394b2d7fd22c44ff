"""Benchmark: training time on the bundled training data (walk-forward, served models, MLflow logging)
and scoring speed of models/infer.py; writes the "models" section of the benchmark report
(reports/benchmarks.local.md; `make bench-record` writes reports/benchmarks.md).

    python scripts/bench_models.py [--features data/processed/features.parquet]

Trains twice into a throwaway SQLite MLflow store: the first run pays for creating the store,
the second is the steady state. Nothing touches the project's own store or artifacts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from common.benchreport import machine_line, status, write_section
from common.config import ConfigError, load_config
from common.logs import setup_logging
from features.replay import InputFileError, expand_inputs, replay, write_parquet
from models import train
from models.artifacts import load_model
from models.data import TableError, read_table
from models.eda import SAMPLE
from models.inference import benchmark

log = logging.getLogger(__name__)
TRAIN_TARGET_S = 180.0  # a whole training run (walk-forward, served models, MLflow logging)
REALTIME_TARGET = 2.0  # scoring at least twice as fast as the market produces ticks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, help="feature table (default: paths.features; replayed from the sample if missing)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write the benchmark report")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = load_config()
        with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
            body = run(args, cfg, Path(tmp))
    except (ConfigError, TableError, InputFileError, RuntimeError) as exc:
        print(f"bench_models: {exc}", file=sys.stderr)
        return 2
    print(body)
    if not args.no_write:
        print(f"written to {write_section('models', body)}")
    return 0


def run(args: argparse.Namespace, cfg, tmp: Path) -> str:
    features = args.features or Path(cfg.paths.features)
    if not features.is_file():
        log.info("%s missing: replaying the bundled sample", features)
        table, _ = replay(expand_inputs([str(SAMPLE)]), cfg.features, cfg.label.horizon_s)
        features = tmp / "features.parquet"
        write_parquet(table, features)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    timings = []
    for attempt in ("fresh store", "existing store"):
        started = time.perf_counter()
        code = train.main(["--features", str(features), "--mlflow-uri", uri,
                           "--artifacts", str(tmp / "artifacts"), "--test-out", str(tmp / "test.parquet")])
        if code != 0:
            raise RuntimeError(f"training failed with exit code {code}")
        wall = time.perf_counter() - started
        summary = json.loads((tmp / "artifacts" / "summary.json").read_text())
        timings.append((attempt, wall, summary))
    last = timings[-1][2]
    families = last["walk_forward"]["families"]
    test = read_table(tmp / "test.parquet", [])
    speed = benchmark(load_model(tmp / "artifacts"), test)
    rows = last["data"]["labeled_rows"]
    lines = [
        "## Models: training and scoring",
        "",
        machine_line(),
        "",
        f"Training on the bundled training data ({rows:,} labeled rows of {', '.join(last['data']['products'])}): "
        f"walk-forward over {len(last['walk_forward']['folds'])} folds with {len(families)} model families and a "
        f"{last['walk_forward']['settings']['bootstrap_draws']}-draw day bootstrap, then the served models, a parent "
        f"MLflow run with {len(families)} child runs (plots, models, input datasets) and registration; `models/train.py` "
        "called in-process (imports included in the first run). The machine is shared, so repeated runs vary:",
        "",
        "| run | wall time (s) | walk-forward (s) | served models (s) | target | status |",
        "|---|---|---|---|---|---|",
    ]
    for attempt, wall, s in timings:
        lines.append(f"| {attempt} | {wall:.1f} | {s['seconds']['walk_forward']:.1f} | {s['seconds']['final_fit']:.1f} "
                     f"| < {TRAIN_TARGET_S:g} s | {status(wall, below=TRAIN_TARGET_S)} |")
    lines += [
        "",
        f"Scoring the validation part ({speed['rows']:,} rows, {speed['market_seconds']:.0f} s of market time, "
        f"{speed['ticks_per_market_second']:.2f} ticks/s) with the selected model ({speed['model']}), "
        "`models/infer.py --mode benchmark`:",
        "",
        "| mode | rows/s | latency per row | times faster than real time | target | status |",
        "|---|---|---|---|---|---|",
        f"| batch | {speed['batch_rows_per_s']:,.0f} | {1e3 / speed['batch_rows_per_s']:.4f} ms | "
        f"{speed['batch_realtime_ratio']:,.0f} | >= {REALTIME_TARGET:g} | {status(speed['batch_realtime_ratio'], at_least=REALTIME_TARGET)} |",
        f"| one row at a time | {1e3 / speed['row_latency_ms_p50']:,.0f} | p50 {speed['row_latency_ms_p50']:.2f} ms, "
        f"p95 {speed['row_latency_ms_p95']:.2f} ms | {speed['row_realtime_ratio']:,.0f} | >= {REALTIME_TARGET:g} | "
        f"{status(speed['row_realtime_ratio'], at_least=REALTIME_TARGET)} |",
        "",
        "Rerun: `make bench` (or `.venv/bin/python scripts/bench_models.py`).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
