"""Helpers for the serving tests: ports, bounded waits, scripts, a uvicorn thread, subprocesses."""

from __future__ import annotations

import runpy
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import uvicorn
from kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from api.feed import feature_rows
from common.config import REPO_ROOT
from common.kafka import ensure_topics, make_consumer, make_producer
from testkit import PYTHON, Proc, free_port, wait_until  # noqa: F401  (re-exported for the tests)

# 2025-12-06 01:12 to 02:59 UTC: about 20,000 real ticks, spikes in every part of the split.
SLICE = str(REPO_ROOT / "data/sample/btcusd-2025-12/ticks_BTCUSD_20251206_0[12]*.ndjson.gz")
MODEL_NAME = "spike-api-test"


def run_script(name: str, argv: list[str]) -> int:
    """Call scripts/<name>.py's main(argv) in this process (the scripts folder is not a package)."""
    namespace = runpy.run_path(str(REPO_ROOT / "scripts" / f"{name}.py"), run_name=f"script_{name}")
    return namespace["main"](argv)


@contextmanager
def uvicorn_server(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, "uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def feature_records(table, columns: tuple[str, ...], received_at: str | None = None) -> list[dict]:
    """Rows as the featurizer publishes them (api.feed), with a fixed receive time if given."""
    rows = list(feature_rows(table, columns))
    return [{**r, "received_at": received_at} for r in rows] if received_at is not None else rows


def publish(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]], partitions: int = 3) -> None:
    """Create ``topic`` if needed and send (key, value) pairs, acknowledged."""
    ensure_topics(bootstrap, {topic: partitions})
    producer = make_producer(bootstrap)
    try:
        for key, value in values:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[bytes]:
    """Values of ``topic`` from the beginning until ``expected`` records or the timeout."""
    consumer = make_consumer(bootstrap, None, fetch_max_wait_ms=100)
    try:
        partitions = wait_until(lambda: consumer.partitions_for_topic(topic), timeout_s, f"topic {topic}", 0.2)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        out: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(r.value for r in records)
        return out
    finally:
        consumer.close()


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} from a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)
