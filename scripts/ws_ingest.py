"""Ingest Coinbase Advanced Trade ticker frames into Kafka ticks.raw (and optionally data/raw/).

    python scripts/ws_ingest.py --pair BTC-USD --minutes 15 --save-disk

Subscribes to the ticker and heartbeats channels (no credentials), reconnects with capped
exponential backoff and jitter, and reconnects when no frame arrives for --watchdog-seconds.
Every record is journaled to disk before Kafka is asked to take it: while Kafka is unreachable
the journal is the spool, delivered in order when the broker is back, and a crashed run's
undelivered records go first in the next run. A status line is logged every 10 s. Stops after --minutes, on SIGINT or SIGTERM, and prints one JSON
line of counters on stdout.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from pathlib import Path

from common.config import ConfigError, load_config
from common.kafka import tame_client_logs, broker_answers, topic_partitions, unavailable_message
from common.logs import setup_logging
from streaming.ingest import IngestSettings, Ingestor, Outputs, counters_json, default_journal_path, run_ingest
from streaming.journal import JournalBusy

log = logging.getLogger(__name__)
PAIR = re.compile(r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", action="append", metavar="PRODUCT",
                        help="product id such as BTC-USD; repeat for several (default: coinbase.products)")
    parser.add_argument("--minutes", type=float, default=15.0,
                        help="how long to run; fractions allowed; 0 runs until SIGINT/SIGTERM (default 15)")
    parser.add_argument("--save-disk", action="store_true", help="also mirror raw records to data/raw/ (NDJSON)")
    parser.add_argument("--no-kafka", action="store_true", help="do not publish; implies --save-disk")
    parser.add_argument("--ws-url", help="WebSocket URL (default: COINBASE_WS_URL or coinbase.ws_url)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or kafka.bootstrap_servers)")
    parser.add_argument("--raw-dir", type=Path, help="mirror directory (default: paths.raw_dir)")
    parser.add_argument("--spool-dir", type=Path, help="journal directory (default: paths.spool_dir)")
    parser.add_argument("--watchdog-seconds", type=float, help="reconnect after this long without a frame")
    parser.add_argument("--backoff-initial-seconds", type=float, help="first reconnect delay")
    parser.add_argument("--backoff-max-seconds", type=float, help="reconnect delay cap")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    try:
        cfg = load_config(args.config, overrides={
            "coinbase.ws_url": args.ws_url,
            "kafka.bootstrap_servers": args.bootstrap,
            "coinbase.watchdog_s": args.watchdog_seconds,
            "coinbase.backoff_initial_s": args.backoff_initial_seconds,
            "coinbase.backoff_max_s": args.backoff_max_seconds,
        })
    except ConfigError as exc:
        print(f"ws_ingest: {exc}", file=sys.stderr)
        return 2
    products = tuple(dict.fromkeys(p.strip().upper() for p in (args.pair or cfg.coinbase.products)))
    bad = [p for p in products if not PAIR.match(p)]
    if bad:
        print(f"ws_ingest: {bad[0]!r} is not a product id: use the form BTC-USD", file=sys.stderr)
        return 2
    if not args.minutes >= 0:
        print("ws_ingest: --minutes must be 0 (until stopped) or positive (fractions such as 0.5 are fine)",
              file=sys.stderr)
        return 2
    if not cfg.coinbase.ws_url.startswith(("ws://", "wss://")):
        print(f"ws_ingest: {cfg.coinbase.ws_url!r} is not a WebSocket URL (ws:// or wss://)", file=sys.stderr)
        return 2
    if cfg.coinbase.watchdog_s <= 0 or cfg.coinbase.backoff_initial_s <= 0 or cfg.coinbase.backoff_max_s <= 0:
        print("ws_ingest: watchdog and backoff times must be positive seconds", file=sys.stderr)
        return 2
    save_disk = args.save_disk or args.no_kafka
    if args.no_kafka and not args.save_disk:
        log.info("--no-kafka: mirroring to disk so that no frame is dropped")

    kafka = cfg.kafka
    bootstrap = None if args.no_kafka else kafka.bootstrap_servers
    if bootstrap is not None and not broker_answers(bootstrap):
        log.warning("%s; ingesting anyway and journaling until it does", unavailable_message(bootstrap))
    spool_dir = args.spool_dir or Path(cfg.paths.spool_dir)
    outputs = Outputs(
        raw_dir=(args.raw_dir or Path(cfg.paths.raw_dir)) if save_disk else None,
        bootstrap=bootstrap,
        topic_raw=kafka.topic_raw,
        topic_dlq=kafka.topic_dlq,
        topics=topic_partitions(kafka),
        journal_path=default_journal_path(spool_dir, products),
    )
    settings = IngestSettings(
        url=cfg.coinbase.ws_url,
        products=products,
        seconds=args.minutes * 60.0 if args.minutes > 0 else float("inf"),
        watchdog_s=cfg.coinbase.watchdog_s,
        backoff_initial_s=cfg.coinbase.backoff_initial_s,
        backoff_max_s=cfg.coinbase.backoff_max_s,
    )

    def install_signals(ingestor: Ingestor) -> None:
        def on_signal(signum: int, _frame: object) -> None:
            log.info("%s: stopping", signal.Signals(signum).name)
            ingestor.stop()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    try:
        counters = run_ingest(settings, outputs, on_ready=install_signals)
    except JournalBusy as exc:
        print(f"ws_ingest: {exc}", file=sys.stderr)
        return 1
    print(counters_json(counters), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
