"""Live features: consume raw records from Kafka, publish feature rows, append Parquet parts.

    python features/featurizer.py --topic_in ticks.raw --topic_out ticks.features
    python -m features.featurizer --topic-in ticks.raw --topic-out ticks.features

Runs until SIGINT or SIGTERM, then flushes, checkpoints, commits and prints one JSON line of
counters. Parts go to <stream_dir>/<group>/part-pPPP-NNNNNNNN.parquet (read the directory as
one table), with one checkpoint per input partition beside them. Several featurizers of one
group may share the directory (on one machine or a shared volume): a partition moves between
them with its feature state. Rejected records go to the DLQ topic. A status line every 10 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from common.config import ConfigError, load_config
from common.kafka import tame_client_logs, BrokerUnavailable, topic_partitions
from common.logs import setup_logging
from streaming.checkpoint import FeaturizerError
from streaming.featurizer import Featurizer, FeaturizerSettings

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topic_in", "--topic-in", dest="topic_in", help="raw records (default: kafka.topic_raw)")
    parser.add_argument("--topic_out", "--topic-out", dest="topic_out",
                        help="feature rows (default: kafka.topic_features)")
    parser.add_argument("--topic_dlq", "--topic-dlq", dest="topic_dlq", help="rejections (default: kafka.topic_dlq)")
    parser.add_argument("--group", help="consumer group (default: kafka.consumer_group)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or config)")
    parser.add_argument("--out-dir", type=Path,
                        help="Parquet parts and checkpoint (default: paths.stream_dir/<group>)")
    parser.add_argument("--flush-seconds", type=float, default=5.0,
                        help="checkpoint, write a part and commit at least this often (default 5)")
    parser.add_argument("--flush-rows", type=int, default=50_000, help="... or after this many rows (default 50000)")
    parser.add_argument("--stall-seconds", type=float, default=30.0,
                        help="records waiting and no progress this long: join the group again (default 30)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    try:
        cfg = load_config(args.config, overrides={
            "kafka.bootstrap_servers": args.bootstrap,
            "kafka.topic_raw": args.topic_in,
            "kafka.topic_features": args.topic_out,
            "kafka.topic_dlq": args.topic_dlq,
            "kafka.consumer_group": args.group,
        })
    except ConfigError as exc:
        print(f"featurizer: {exc}", file=sys.stderr)
        return 2
    if not args.flush_seconds > 0 or args.flush_rows < 1 or not args.stall_seconds > 0:
        print("featurizer: --flush-seconds, --flush-rows and --stall-seconds must be positive", file=sys.stderr)
        return 2
    kafka = cfg.kafka
    if len({kafka.topic_raw, kafka.topic_features, kafka.topic_dlq}) < 3:
        print("featurizer: the input, output and DLQ topics must be three different topics", file=sys.stderr)
        return 2
    settings = FeaturizerSettings(
        bootstrap=kafka.bootstrap_servers,
        topic_in=kafka.topic_raw,
        topic_out=kafka.topic_features,
        topic_dlq=kafka.topic_dlq,
        group=kafka.consumer_group,
        out_dir=args.out_dir or Path(cfg.paths.stream_dir) / kafka.consumer_group,
        topics=topic_partitions(kafka),
        flush_s=args.flush_seconds,
        flush_rows=args.flush_rows,
        stall_s=args.stall_seconds,
        check_s=min(5.0, args.stall_seconds / 3),
    )
    featurizer = Featurizer(settings, cfg.features)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: stopping after the current batch", signal.Signals(signum).name)
        featurizer.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        featurizer.open()
    except (FeaturizerError, BrokerUnavailable) as exc:
        featurizer.close()
        print(f"featurizer: {exc}", file=sys.stderr)
        return 1
    log.info("reading %s as group %s; rows to %s and %s", settings.topic_in, settings.group,
             settings.topic_out, settings.out_dir)
    try:
        stats = featurizer.run()
    except FeaturizerError as exc:
        print(f"featurizer: {exc}", file=sys.stderr)
        return 1
    report = {**asdict(stats), "summary": featurizer.summary(), "out_dir": str(settings.out_dir)}
    print(json.dumps(report), flush=True)
    return 0 if featurizer.clean else 1


if __name__ == "__main__":
    sys.exit(main())
