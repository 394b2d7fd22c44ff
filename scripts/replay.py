"""Replay recorded raw NDJSON files into the feature table (Parquet).

    python scripts/replay.py --raw data/sample/btcusd-2025-12/*.ndjson.gz --out data/processed/features.parquet

Rows are written in row groups as they are computed, so memory does not grow with the input.
``--jobs N`` replays files that share no segment in N processes; the output is the same.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from common.config import ConfigError, load_config
from common.logs import setup_logging
from features.replay import InputFileError, expand_inputs, replay_to_parquet, warm_up
from features.ticks import Rejection

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", nargs="+", required=True, metavar="FILE",
                        help="NDJSON files (.gz or plain), replayed in the order given; quoted globs expand sorted")
    parser.add_argument("--out", type=Path, help="output Parquet (default: paths.features in config.yaml)")
    parser.add_argument("--rejects", type=Path, metavar="FILE",
                        help="also write every rejected line with its reason to this NDJSON file")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="processes for files that share no segment (default 1; 0: one per core)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = load_config(args.config)
        paths = expand_inputs(args.raw)
    except (ConfigError, InputFileError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path(cfg.paths.features)
    if args.jobs < 0:
        print("replay: --jobs must be 0 (one per core) or more", file=sys.stderr)
        return 2
    jobs = args.jobs or os.cpu_count() or 1

    rejects_file = args.rejects.open("w") if args.rejects else None

    def keep_rejection(line: bytes, rejection: Rejection) -> None:
        if rejects_file is not None:
            record = {"reason": rejection.reason, "detail": rejection.detail,
                      "line": line.decode("utf-8", "replace").rstrip("\n")}
            rejects_file.write(json.dumps(record) + "\n")

    started = time.perf_counter()
    warm_up()  # numba's start and the cached kernels: a fixed cost per process, reported apart
    kernels_s = time.perf_counter() - started
    total_bytes = sum(p.stat().st_size for p in paths)
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="replay",
               disable=True if args.no_progress or total_bytes < 5_000_000 else None)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        result = replay_to_parquet(paths, out, cfg.features, cfg.label.horizon_s, keep_rejection, bar.update, jobs)
    except InputFileError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
        if rejects_file is not None:
            rejects_file.close()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    report = result.summary.as_dict()
    report["files"] = len(paths)
    report["rows"] = result.rows
    report["rows_with_label"] = result.rows_with_label
    report["out"] = str(out)
    report["seconds"] = round(seconds, 3)
    report["cpu_seconds"] = round(cpu_seconds, 3)  # this process only (--jobs > 1: not the workers)
    report["kernels_s"] = round(kernels_s, 3)
    report["lines_per_s"] = round(result.summary.lines / seconds) if seconds > 0 else None
    log.info("wrote %d rows to %s", result.rows, out)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
