"""Drill feed: publish recorded feature rows to ticks.features at a steady rate.

    python scripts/feed_features.py                                   # 600 test-part rows, 10 a second
    python scripts/feed_features.py --features data/processed/features.parquet --rate 50 --limit 3000

Checks the scoring path (live scorer, ticks.predictions, drift monitor, dashboards) without a
live feed. Rows are the feature module's output from a table built by scripts/replay.py,
sent as the featurizer sends them (keyed by product id) with received_at = the time sent.
Prints one JSON line with the count. Not for production topics fed by the featurizer.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

import pandas as pd

from api.feed import feature_rows, publish_rows
from common.config import ConfigError, load_config
from common.kafka import BrokerUnavailable, tame_client_logs
from common.logs import setup_logging

log = logging.getLogger("scripts.feed_features")
DEFAULT_TABLE = Path("data/processed/features_test.parquet")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, default=DEFAULT_TABLE, help="feature table (default %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0, help="rows a second, 0 = as fast as possible (default 10)")
    parser.add_argument("--limit", type=int, default=600, help="rows to send (default 600)")
    parser.add_argument("--skip", type=int, default=0, help="start at this row of the table (default 0)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or config)")
    parser.add_argument("--topic", help="feature topic (default: kafka.topic_features)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    if args.rate < 0 or args.limit < 1 or args.skip < 0:
        print("feed_features: --rate must be >= 0, --limit >= 1 and --skip >= 0", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, overrides={"kafka.bootstrap_servers": args.bootstrap,
                                                  "kafka.topic_features": args.topic})
    except ConfigError as exc:
        print(f"feed_features: {exc}", file=sys.stderr)
        return 2
    if not args.features.is_file():
        print(f"feed_features: {args.features} does not exist: run `make demo` (or scripts/replay.py) first",
              file=sys.stderr)
        return 2
    table = pd.read_parquet(args.features).iloc[args.skip:args.skip + args.limit]
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        rows = feature_rows(table, cfg.features.columns)
        sent = publish_rows(cfg.kafka.bootstrap_servers, cfg.kafka.topic_features, cfg.kafka.partitions, rows,
                            args.rate or None, stop)
    except ValueError as exc:
        print(f"feed_features: {args.features}: {exc}", file=sys.stderr)
        return 2
    except BrokerUnavailable as exc:
        print(f"feed_features: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"sent": sent, "topic": cfg.kafka.topic_features, "table": str(args.features)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
