"""Check that a topic holds well-formed records: read it from the start until --min are found.

    python scripts/kafka_consume_check.py --topic ticks.raw --min 100

Exits 0 and prints one JSON line (count, rates, records per key) once it has read --min valid
records; otherwise exits 1 with one line saying what is wrong (no broker, no topic, too few
records, malformed records). It reads without a consumer group, so it moves no offsets.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from kafka import TopicPartition

from common.config import ConfigError, load_config
from common.kafka import BrokerUnavailable, make_consumer, tame_client_logs
from common.logs import setup_logging
from streaming.records import dlq_problem, feature_problem, object_problem, raw_problem

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topic", required=True, help="topic to check (ticks.raw, ticks.features or ticks.dlq)")
    parser.add_argument("--min", type=int, default=100, help="valid records needed (default 100)")
    parser.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds (default 30)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or config)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    try:
        cfg = load_config(args.config, overrides={"kafka.bootstrap_servers": args.bootstrap})
    except ConfigError as exc:
        return fail(str(exc), code=2)
    if args.min < 1 or args.timeout <= 0:
        return fail("--min and --timeout must be positive", code=2)
    kafka = cfg.kafka
    columns = cfg.features.columns
    checks = {
        kafka.topic_raw: raw_problem,
        kafka.topic_features: lambda value: feature_problem(value, columns),
        kafka.topic_dlq: dlq_problem,
    }
    check = checks.get(args.topic)
    if check is None:
        log.info("%s is none of the project's topics: checking only that records are JSON objects", args.topic)
        check = object_problem

    try:
        consumer = make_consumer(kafka.bootstrap_servers, None, fetch_max_wait_ms=200)
    except BrokerUnavailable as exc:
        return fail(str(exc))
    try:
        partitions = consumer.partitions_for_topic(args.topic)
        if not partitions:
            return fail(f"topic {args.topic} does not exist at {kafka.bootstrap_servers}: "
                        "run `make kafka` (it creates the topics) and start the producer")
        consumer.assign([TopicPartition(args.topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        started = time.monotonic()
        valid, per_key, stamps = 0, Counter(), []
        malformed: list[str] = []
        while valid < args.min and time.monotonic() - started < args.timeout:
            for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                for record in records:
                    problem = check(record.value)
                    if problem:
                        malformed.append(f"partition {record.partition} offset {record.offset}: {problem}")
                        continue
                    valid += 1
                    per_key[(record.key or b"").decode("utf-8", "replace")] += 1
                    stamps.append(record.timestamp)
        elapsed = time.monotonic() - started
    finally:
        consumer.close()
    if malformed:
        return fail(f"{len(malformed)} malformed records in {args.topic}; first at {malformed[0]}")
    if valid < args.min:
        return fail(f"only {valid} valid records in {args.topic} after {args.timeout:g} s (wanted {args.min}): "
                    "is the producer running?")
    span_s = (max(stamps) - min(stamps)) / 1000 if len(stamps) > 1 else 0.0
    print(json.dumps({
        "topic": args.topic,
        "valid": valid,
        "produce_rate_per_s": round((valid - 1) / span_s, 2) if span_s > 0 else None,
        "read_rate_per_s": round(valid / elapsed, 1) if elapsed > 0 else None,
        "per_key": dict(per_key.most_common()),
    }))
    return 0


def fail(message: str, code: int = 1) -> int:
    print(f"kafka_consume_check: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
