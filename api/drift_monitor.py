"""Live drift: the last N minutes of ticks.features against the served model's training rows.

The comparison is ``models.drift.drift_report`` (Evidently; per-column Wasserstein distance
in reference standard deviations, the statistic the offline reports use), so a live verdict
and an offline one mean the same thing. The window is in event time: the N minutes before
the newest row read. ``drift_window_end_timestamp_seconds`` tells how fresh that is.

The reference is the training part of the table the model was trained on (from the model's
metadata: table path and train range), thinned evenly to at most ``max_reference_rows``
so every run takes seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from api.scorer import parse_row
from common.kafka import BrokerUnavailable, broker_answers, close_quietly, make_consumer
from models.drift import drift_report

log = logging.getLogger(__name__)

REPORT_PREFIX = "live-"


class DriftError(RuntimeError):
    """The reference cannot be built; the message says what to do."""


def reference_from_meta(meta: dict[str, Any], features: tuple[str, ...], override: Path | None,
                        max_rows: int) -> pd.DataFrame:
    """The training rows named by the model's metadata (or all rows of ``override``)."""
    data = meta.get("data") or {}
    path = override or (Path(data["table"]) if data.get("table") else None)
    if path is None:
        raise DriftError("the model's metadata names no training table: pass --reference PATH")
    if not path.is_file():
        raise DriftError(f"the training table {path} is not here: pass --reference PATH "
                         "(a feature table such as data/processed/features.parquet)")
    try:
        table = pd.read_parquet(path, columns=["ts", *features])
    except (OSError, ValueError, KeyError) as exc:
        raise DriftError(f"{path}: cannot read the columns ts, {', '.join(features)} ({exc})") from exc
    train = (data.get("split") or {}).get("train")
    if override is None and train:
        start, end = pd.Timestamp(train["start"]), pd.Timestamp(train["end"])
        table = table[(table["ts"] >= start) & (table["ts"] <= end)]
    if table.empty:
        raise DriftError(f"{path}: no reference rows (train range {train}); pass --reference PATH")
    if len(table) > max_rows:
        table = table.iloc[np.linspace(0, len(table) - 1, max_rows).round().astype(int)]
    return table.reset_index(drop=True)


class LiveWindow:
    """Feature rows of the last ``window_s`` seconds of event time."""

    def __init__(self, features: tuple[str, ...], window_s: float) -> None:
        self.features = features
        self.window_ns = int(window_s * 1e9)
        self._rows: deque[tuple[int, list[float]]] = deque()
        self.newest_ns = 0

    def add(self, ts_ns: int, vector: list[float]) -> None:
        self._rows.append((ts_ns, vector))
        self.newest_ns = max(self.newest_ns, ts_ns)
        cutoff = self.newest_ns - self.window_ns
        while self._rows and self._rows[0][0] < cutoff:
            self._rows.popleft()

    def frame(self) -> pd.DataFrame:
        cutoff = self.newest_ns - self.window_ns
        rows = [(ts, v) for ts, v in self._rows if ts >= cutoff]
        table = pd.DataFrame([v for _, v in rows], columns=list(self.features), dtype=float)
        table.insert(0, "ts", pd.to_datetime([ts for ts, _ in rows], unit="ns", utc=True))
        return table


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.share = Gauge("drift_share", "share of model features whose live distribution drifted from training",
                           registry=r)
        self.drifted = Gauge("drift_drifted_columns", "number of drifted model features", registry=r)
        self.dataset = Gauge("drift_dataset_drift", "1 when at least half the features drifted", registry=r)
        self.distance = Gauge("drift_column_distance", "Wasserstein distance / reference std per feature",
                              ["column"], registry=r)
        self.window_rows = Gauge("drift_window_rows", "live rows in the compared window", registry=r)
        self.reference_rows = Gauge("drift_reference_rows", "training rows compared against (0 while waiting "
                                                            "for the model or its training table)", registry=r)
        self.window_end = Gauge("drift_window_end_timestamp_seconds", "event time of the newest live row compared",
                                registry=r)
        self.last_run = Gauge("drift_last_run_timestamp_seconds", "when the last comparison finished (unix time)",
                              registry=r)
        self.runs = Counter("drift_runs_total", "comparisons by outcome (ok, too_few_rows, error)", ["outcome"],
                            registry=r)
        self.rows = Counter("drift_rows_consumed_total", "feature rows read", registry=r)
        self.invalid = Counter("drift_invalid_rows_total", "rows that are not feature rows (skipped)", registry=r)


@dataclass(frozen=True)
class DriftSettings:
    bootstrap: str
    topic: str
    window_s: float
    min_rows: int
    out_dir: Path
    keep_reports: int = 48


class DriftMonitor:
    def __init__(self, settings: DriftSettings, reference: pd.DataFrame, features: tuple[str, ...],
                 metrics: DriftMetrics | None = None, calibration: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.reference = reference
        self.calibration = calibration  # per-column thresholds from the training windows (models.drift.calibrate)
        self.features = features
        self.metrics = metrics or DriftMetrics()
        self.window = LiveWindow(features, settings.window_s)
        self._consumer: KafkaConsumer | None = None

    # -- reading -----------------------------------------------------------------------

    def connect(self, wait_topic_s: float = 10.0) -> None:
        """Assign every partition and start ``window_s`` before now (earliest where unknown)."""
        s = self.settings
        consumer = make_consumer(s.bootstrap, None, fetch_max_wait_ms=200, max_poll_records=2000,
                                 client_id="drift-monitor")
        deadline = time.monotonic() + wait_topic_s
        partitions = consumer.partitions_for_topic(s.topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(s.topic)
        if not partitions:
            close_quietly([consumer])
            raise BrokerUnavailable(f"topic {s.topic} does not exist at {s.bootstrap}: start the featurizer "
                                    "(make featurize) or create the topics (make kafka)")
        tps = [TopicPartition(s.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        since_ms = int((time.time() - s.window_s) * 1000)
        try:
            found = consumer.offsets_for_times({tp: since_ms for tp in tps})
        except KafkaError as exc:
            log.warning("cannot look offsets up by time (%s); reading %s from the start", exc, s.topic)
            found = {}
        for tp in tps:
            hit = found.get(tp)
            if hit is not None and hit.offset >= 0:
                consumer.seek(tp, hit.offset)
            else:
                consumer.seek_to_beginning(tp)
        self._consumer = consumer

    def close(self) -> None:
        close_quietly([self._consumer])
        self._consumer = None

    def poll(self, timeout_ms: int = 500) -> int:
        """Read what is there; the number of records read."""
        assert self._consumer is not None
        batch = self._consumer.poll(timeout_ms=timeout_ms)
        count = 0
        for records in batch.values():
            for message in records:
                count += 1
                record, vector, reason, _ = parse_row(message.value, self.features)
                if reason:
                    self.metrics.invalid.inc()
                    continue
                self.window.add(record["ts"], vector)
        self.metrics.rows.inc(count)
        return count

    def catch_up(self, quiet_ms: int = 1000, limit_s: float = 120.0) -> int:
        """Read until a poll of ``quiet_ms`` brings nothing (or ``limit_s``); records read."""
        total, deadline = 0, time.monotonic() + limit_s
        while time.monotonic() < deadline:
            n = self.poll(timeout_ms=quiet_ms)
            total += n
            if n == 0:
                break
        return total

    # -- comparing ---------------------------------------------------------------------

    def evaluate(self) -> dict[str, Any]:
        """Compare the window with the reference, write the report, set the metrics."""
        s, m = self.settings, self.metrics
        current = self.window.frame()
        m.window_rows.set(len(current))
        if self.window.newest_ns:
            m.window_end.set(self.window.newest_ns / 1e9)
        if len(current) < s.min_rows:
            m.runs.labels("too_few_rows").inc()
            m.last_run.set(time.time())
            return {"outcome": "too_few_rows", "rows": len(current), "min_rows": s.min_rows}
        name = REPORT_PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            result = drift_report(self.reference, current, list(self.features), s.out_dir, name, self.calibration,
                                  "the last live window against the served model's training rows")
        except (ValueError, KeyError, TypeError) as exc:  # Evidently refusing a degenerate window
            m.runs.labels("error").inc()
            log.error("drift report failed: %s", exc)
            return {"outcome": "error", "rows": len(current), "error": str(exc)}
        m.share.set(result["drift_share"])
        m.drifted.set(result["drifted_count"])
        m.dataset.set(1 if result["dataset_drift"] else 0)
        for column, value in result["distance"].items():
            m.distance.labels(column).set(value if math.isfinite(value) else -1)
        m.runs.labels("ok").inc()
        m.last_run.set(time.time())
        summary = {"outcome": "ok", **{k: result[k] for k in ("drift_share", "drifted_count", "columns",
                                                              "dataset_drift", "drifted", "reference", "current",
                                                              "html", "json")}}
        (s.out_dir / "latest.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        self._prune()
        return summary

    # -- the service loop --------------------------------------------------------------

    def run(self, stop: threading.Event, first_after_s: float = 60.0) -> None:
        """Read continuously; compare every window length (the first time after ``first_after_s``).

        A broker that stops answering is reconnected to every 5 s; the window keeps its rows.
        """
        next_run = time.monotonic() + min(self.settings.window_s, first_after_s)
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                if self._consumer is None:
                    self._reconnect(stop)
                    continue
                if self.poll(timeout_ms=500):
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 5.0:
                    idle_since = time.monotonic()
                    if not broker_answers(self.settings.bootstrap):
                        log.warning("the broker at %s stopped answering; reconnecting", self.settings.bootstrap)
                        self.close()
                if time.monotonic() >= next_run:
                    log.info("drift: %s", orjson.dumps(self.evaluate()).decode())
                    next_run = time.monotonic() + self.settings.window_s
        finally:
            self.close()

    def _reconnect(self, stop: threading.Event) -> None:
        try:
            self.connect()
        except (BrokerUnavailable, KafkaError) as exc:
            log.warning("%s; retrying in 5 s", exc)
            self.close()
            stop.wait(5.0)

    def _prune(self) -> None:
        reports = sorted(self.settings.out_dir.glob(f"{REPORT_PREFIX}*.json"))
        for old in reports[:-self.settings.keep_reports]:
            for suffix in (".json", ".html"):
                old.with_suffix(suffix).unlink(missing_ok=True)
