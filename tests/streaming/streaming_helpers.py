"""Helpers for the streaming tests: ports, bounded waits, subprocesses, reading outputs."""

from __future__ import annotations

import time

from pathlib import Path

import orjson
from kafka import TopicPartition

from common.kafka import make_consumer
from testkit import PYTHON, Proc, free_port, wait_until  # noqa: F401  (re-exported for the tests)

REPO_ROOT = Path(__file__).resolve().parents[2]
FRAMES_FILE = REPO_ROOT / "tests" / "data" / "btcusd-2026-04-05-frames.ndjson.gz"
THREE_PRODUCTS_FILE = REPO_ROOT / "tests" / "data" / "exchange-2025-11-27-head.ndjson.gz"


def ingest_args(url: str, bootstrap: str | None, workdir: Path, minutes: float = 2.0, extra: tuple = (),
                pairs: tuple[str, ...] = ("BTC-USD",)) -> list[str]:
    """ws_ingest.py with fast test timings: 3 s watchdog (15 heartbeats), backoff capped at 0.2 s."""
    args = ["scripts/ws_ingest.py", *(a for p in pairs for a in ("--pair", p)), "--minutes", str(minutes), "--save-disk",
            "--ws-url", url, "--raw-dir", str(workdir / "raw"), "--spool-dir", str(workdir / "spool"),
            "--watchdog-seconds", "3", "--backoff-initial-seconds", "0.05", "--backoff-max-seconds", "0.2"]
    if bootstrap is None:
        args.append("--no-kafka")
    else:
        args += ["--bootstrap", bootstrap]
    return args + list(extra)


def mirrored_records(raw_dir: Path) -> list[dict]:
    """Complete raw records in the mirror files, in replay order (sorted names).

    A line still being written (no newline yet) is left for the next look.
    """
    records = []
    for path in sorted(raw_dir.glob("*.ndjson")):
        for line in path.read_bytes().split(b"\n")[:-1]:
            if line.strip():
                records.append(orjson.loads(line))
    return records


def consume_values(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[tuple]:
    """Read a topic from the beginning (no group) until ``expected`` records: (partition, offset, key, value)."""
    return read_topic(bootstrap, topic, at_least=expected, quiet_s=0.0, timeout_s=timeout_s)


def featurizer_args(bootstrap: str, out_dir: Path, extra: tuple = ()) -> list[str]:
    """features/featurizer.py flushing twice a second, so a test sees several parts and checkpoints."""
    return ["features/featurizer.py", "--topic_in", "ticks.raw", "--topic_out", "ticks.features",
            "--bootstrap", bootstrap, "--out-dir", str(out_dir), "--flush-seconds", "0.5", *extra]


def read_parts(out_dir: Path):
    """The featurizer's Parquet parts (of every partition and every member), rows of a product in order."""
    import pandas as pd

    parts = sorted(out_dir.glob("part-*.parquet"))  # by partition, then in the order written
    if not parts:
        return None
    return by_product(pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True))


def by_product(table):
    """Rows grouped by product, each product's rows in their order: how parts and replay compare."""
    return table.sort_values("product_id", kind="stable").reset_index(drop=True)


def count_part_rows(out_dir: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in out_dir.glob("part-*.parquet"))


def replay_mirror(raw_dir: Path):
    """What replay makes of the mirrored files, without the future-looking label column."""
    from common.config import load_config
    from features.labels import sigma_column
    from features.replay import expand_inputs, replay

    cfg = load_config()
    table, _ = replay(expand_inputs([str(raw_dir / "*.ndjson")]), cfg.features, cfg.label.horizon_s)
    return by_product(table.drop(columns=[sigma_column(cfg.label.horizon_s)]))


def read_topic(bootstrap: str, topic: str, at_least: int = 0, quiet_s: float = 2.0,
               timeout_s: float = 60.0) -> list[tuple]:
    """Records of a topic from its beginning (partition, offset, key, value), sorted: read until
    ``at_least`` records are in and nothing new came for ``quiet_s`` (or ``timeout_s`` passed)."""
    consumer = make_consumer(bootstrap, None, consumer_timeout_ms=500, fetch_max_wait_ms=100)
    try:
        partitions = wait_until(lambda: consumer.partitions_for_topic(topic), 10, f"topic {topic}")
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        out: list[tuple] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                out.extend((r.partition, r.offset, r.key, r.value) for r in records)
            if batch:
                last_new = time.monotonic()
            elif len(out) >= at_least and time.monotonic() - last_new >= quiet_s:
                break
        return sorted(out)
    finally:
        consumer.close()


def distinct_values(records: list[tuple]) -> list[bytes]:
    """Values in log order (partition by partition), exact repeats left out (at-least-once delivery)."""
    seen: set[bytes] = set()
    out = []
    for *_, value in sorted(records):
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def replay_values(values: list[bytes], workdir: Path):
    """What replay computes from these raw records (label column left out), rows grouped by product."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "raw.ndjson").write_bytes(b"".join(v + b"\n" for v in values))
    return replay_mirror(workdir)
