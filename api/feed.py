"""A drill feed: recorded feature rows published to ticks.features as the featurizer publishes them.

For checking the scoring path (scorer, predictions, drift, dashboards) when no live feed runs,
e.g. after a recovery or on a machine without access to the exchange. The rows come from a
feature table written by the feature module (``scripts/replay.py``); nothing is recomputed.
Each row's ``received_at`` is the time it is published, so the scorer's end-to-end latency
then measures feed -> prediction.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Iterator

import orjson
import pandas as pd

from common.kafka import ensure_topics, make_producer
from features.ticks import format_time_ns


def feature_rows(table: pd.DataFrame, columns: tuple[str, ...]) -> Iterator[dict]:
    """Rows laid out as the featurizer publishes them: every column, ts and segment as int ns
    since epoch, missing values as null."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the table lacks the feature column(s) {', '.join(missing)}: build it with scripts/replay.py")
    for values in table.loc[:, list(columns)].itertuples(index=False):
        row = {}
        for name, v in zip(columns, values):
            if isinstance(v, pd.Timestamp):
                v = v.value
            elif isinstance(v, float) and math.isnan(v):
                v = None
            row[name] = v
        yield row


def publish_rows(bootstrap: str, topic: str, partitions: int, rows: Iterator[dict], rate: float | None,
                 stop: threading.Event | None = None, stamp: bool = True) -> int:
    """Send rows keyed by product id at ``rate`` per second (None: as fast as acknowledged); the count sent."""
    ensure_topics(bootstrap, {topic: partitions})
    producer = make_producer(bootstrap)
    sent, started = 0, time.monotonic()
    try:
        for row in rows:
            if stop is not None and stop.is_set():
                break
            if rate:
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if stamp:
                row = {**row, "received_at": format_time_ns(time.time_ns())}
            producer.send(topic, key=str(row["product_id"]).encode(), value=orjson.dumps(row))
            sent += 1
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)
    return sent
