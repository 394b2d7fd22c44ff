"""The live scorer: ticks.features -> the served model -> ticks.predictions.

Rows are scored with the API's model code (``api.serving.ModelHolder`` ->
``LoadedModel.score``) and follow the same rollback switch. Feature values that are null
(the first ticks of a segment have no volatility yet) are scored as missing: the models
impute them, as in training.

Delivery is at least once: offsets are committed only after the broker acknowledged the
predictions of everything before them, so a crash re-scores at most the last second of rows
(readers drop repeats by product_id and ts). A row that is not a valid feature row goes to
the DLQ with the reason, and the scorer goes on.

End-to-end latency is measured from the raw record's ``received_at`` (the ingestor's receive
time of the WebSocket frame, carried in the feature row) to the broker's acknowledgement of
the prediction. Consumer lag is the partition's high watermark minus the scorer's position.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from api.metrics import SCORE_BUCKETS, ModelGauges
from api.serving import ModelHolder, Served
from common.kafka import (BrokerUnavailable, broker_answers, close_quietly, dlq_record, ensure_topics, make_consumer,
                          make_producer,
                          unavailable_message)
from features.ticks import format_time_ns, parse_time_ns

log = logging.getLogger(__name__)

E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
MAX_LOGGED_INVALID = 10  # per minute; the rest are counted


class DeliveryFailed(KafkaError):
    """The broker did not acknowledge predictions; the session restarts from the committed offsets."""


@dataclass(frozen=True)
class ScorerSettings:
    bootstrap: str
    topic_in: str
    topic_out: str
    topic_dlq: str
    group: str
    partitions: int  # of the output topic when it has to be created
    reload_s: float = 1.0  # how often the variant switch is followed
    poll_ms: int = 25  # also the broker's fetch wait: the local broker holds a fetch this long (e2e latency)
    max_records: int = 500
    commit_s: float = 1.0
    lag_s: float = 1.0
    backoff_max_s: float = 10.0


class ScorerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.rows = Counter("scorer_rows_total", "feature rows consumed from the input topic", registry=r)
        self.invalid = Counter("scorer_invalid_rows_total", "rows sent to the DLQ instead of scored", ["reason"],
                               registry=r)
        self.predictions = Counter("scorer_predictions_total", "predictions published", ["variant"], registry=r)
        self.spikes = Counter("scorer_spike_alerts_total", "predictions at or above the model's threshold",
                              ["variant", "product_id"], registry=r)
        self.scores = Histogram("scorer_prediction_score", "spike probabilities published", ["variant"],
                                buckets=SCORE_BUCKETS, registry=r)
        self.last_score = Gauge("scorer_last_score", "latest spike probability per product", ["product_id"],
                                registry=r)
        self.threshold = Gauge("scorer_alert_threshold", "the served model's alert threshold", registry=r)
        self.e2e = Histogram("scorer_e2e_latency_seconds",
                             "frame receipt by the ingestor to the prediction acknowledged on the output topic",
                             buckets=E2E_BUCKETS, registry=r)
        self.lag = Gauge("scorer_consumer_lag", "records behind the high watermark, per input partition",
                         ["partition"], registry=r)
        self.broker_up = Gauge("scorer_broker_connected", "1 while connected to the broker", registry=r)
        self.reconnects = Counter("scorer_reconnects_total", "reconnections after a broker problem", registry=r)
        self.last_prediction = Gauge("scorer_last_prediction_timestamp_seconds",
                                     "when the last prediction was acknowledged (unix time)", registry=r)
        self.model = ModelGauges("scorer", r)


@dataclass
class ScorerStats:
    rows: int = 0
    predictions: int = 0
    alerts: int = 0
    invalid: int = 0
    reconnects: int = 0
    commits: int = 0


def parse_row(value: bytes | None, features: tuple[str, ...]) -> tuple[dict | None, list[float] | None, str, str]:
    """(record, feature vector, reason, detail); reason is '' for a valid row.

    Null features are missing values (NaN); anything else that is not a finite number is refused.
    """
    if value is None:
        return None, None, "empty", "no value"
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return None, None, "not_json", str(exc)[:200]
    if not isinstance(obj, dict):
        return None, None, "not_object", type(obj).__name__
    if not isinstance(obj.get("product_id"), str) or type(obj.get("ts")) is not int:
        return None, None, "bad_identity", "product_id must be a string and ts an integer (ns since epoch)"
    vector = []
    for name in features:
        if name not in obj:
            return None, None, "missing_feature", name
        v = obj[name]
        if v is None:
            vector.append(math.nan)
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or math.isinf(v):
            return None, None, "not_a_number", f"{name}={str(v)[:50]}"
        else:
            vector.append(float(v))
    return obj, vector, "", ""


def _received_ns(record: dict) -> int | None:
    """The frame's receive time carried by the row; None when absent or malformed (no latency sample)."""
    stamp = record.get("received_at")
    if not isinstance(stamp, str):
        return None
    try:
        return parse_time_ns(stamp)
    except ValueError:
        log.debug("unreadable received_at %r", stamp[:50])
        return None


class LiveScorer:
    """``run()`` until ``stop()``; survives broker outages by reconnecting with backoff."""

    def __init__(self, settings: ScorerSettings, holder: ModelHolder, metrics: ScorerMetrics | None = None) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics or ScorerMetrics()
        self.stats = ScorerStats()
        self._stop = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._logged: list[float] = []
        holder.listeners.append(self._on_model)
        if holder.current() is not None:  # loaded before the scorer was built
            self._on_model(None, holder.current())

    def stop(self) -> None:
        self._stop.set()

    def _on_model(self, previous: Served | None, served: Served) -> None:
        self.metrics.model.on_change(previous, served)
        self.metrics.threshold.set(served.model.threshold)

    # -- lifecycle ---------------------------------------------------------------------

    def wait_for_model(self) -> bool:
        """Block until a model is loaded (or stop); the input is not read without one."""
        while not self._stop.is_set():
            self.holder.sync()
            if self.holder.current() is not None:
                return True
            self._stop.wait(self.settings.reload_s)
        return False

    def connect(self) -> None:
        """Create the topics that are missing and open the clients. Raises BrokerUnavailable."""
        s = self.settings
        ensure_topics(s.bootstrap, {s.topic_in: s.partitions, s.topic_out: s.partitions, s.topic_dlq: 1})
        self._producer = make_producer(s.bootstrap, linger_ms=1, delivery_timeout_ms=10_000)
        self._consumer = make_consumer(s.bootstrap, s.group, fetch_max_wait_ms=s.poll_ms,
                                       max_poll_records=s.max_records, client_id=f"scorer-{s.group}")
        self._consumer.subscribe([s.topic_in])
        self.metrics.broker_up.set(1)

    def close(self) -> None:
        close_quietly([self._consumer, self._producer])
        self._consumer = self._producer = None
        self.metrics.broker_up.set(0)

    def run(self) -> ScorerStats:
        """Score until stopped; the first connection must succeed (BrokerUnavailable otherwise)."""
        if not broker_answers(self.settings.bootstrap):  # say so before spending seconds on the model
            raise BrokerUnavailable(unavailable_message(self.settings.bootstrap))
        if not self.wait_for_model():
            return self.stats
        self.connect()
        try:
            while not self._stop.is_set():
                try:
                    self._session()
                except (KafkaError, BrokerUnavailable) as exc:
                    log.warning("broker problem (%s); reconnecting, then resuming from the committed offsets", exc)
                    self.close()
                    self._reconnect()
        finally:
            self.close()
        return self.stats

    def _reconnect(self) -> None:
        """Try again with capped exponential backoff until connected or stopped."""
        delay = 0.5
        while not self._stop.wait(delay):
            try:
                self.connect()
            except (BrokerUnavailable, KafkaError) as exc:
                self.close()
                delay = min(delay * 2, self.settings.backoff_max_s)
                log.warning("%s (next try in %.0f s)", exc, delay)
                continue
            self.stats.reconnects += 1
            self.metrics.reconnects.inc()
            log.info("reconnected to %s", self.settings.bootstrap)
            return

    # -- one connected session ---------------------------------------------------------

    def _session(self) -> None:
        if self._consumer is None or self._producer is None:
            raise BrokerUnavailable(f"not connected to {self.settings.bootstrap}")
        s = self.settings
        consumer = self._consumer
        last_sync = last_commit = last_lag = time.monotonic()
        idle_since = time.monotonic()
        uncommitted = False
        while not self._stop.is_set():
            batch = consumer.poll(timeout_ms=s.poll_ms)
            messages = [m for records in batch.values() for m in records]
            if messages:
                self._handle(messages)
                uncommitted = True
                idle_since = time.monotonic()
            now = time.monotonic()
            if now - last_lag >= s.lag_s:
                self._update_lag(consumer)
                last_lag = now
            if uncommitted and now - last_commit >= s.commit_s:
                self._commit(consumer)
                uncommitted, last_commit = False, now
            if now - last_sync >= s.reload_s:
                self.holder.sync()
                last_sync = now
            if not messages and now - idle_since >= 5.0:
                idle_since = now
                if not broker_answers(s.bootstrap):  # the consumer alone retries silently forever
                    raise BrokerUnavailable(f"the broker at {s.bootstrap} stopped answering")
        if uncommitted:
            self._commit(consumer)

    def _handle(self, messages: list[Any]) -> None:
        served = self.holder.current()
        assert served is not None and self._producer is not None
        features = served.model.features
        valid, vectors, futures = [], [], []
        for message in messages:
            self.stats.rows += 1
            record, vector, reason, detail = parse_row(message.value, features)
            if reason:
                futures.append(self._reject(message, reason, detail))
            else:
                valid.append(record)
                vectors.append(vector)
        self.metrics.rows.inc(len(messages))
        if not valid:
            self._deliver(futures)
            return
        model = served.model
        frame = pd.DataFrame(np.asarray(vectors, dtype=float), columns=list(features))
        frame.insert(0, "product_id", [record["product_id"] for record in valid])
        scores, sigmas = model.score(frame), model.sigma(frame)
        scored_at = format_time_ns(time.time_ns())
        for record, score, sigma in zip(valid, scores.tolist(), sigmas.tolist()):
            prediction = {
                "product_id": record["product_id"], "ts": record["ts"], "score": score, "sigma": sigma,
                "alert": score >= model.threshold, "threshold": model.threshold,
                "model_variant": served.variant, "model_name": model.name, "model_version": model.version,
                "received_at": record.get("received_at"), "scored_at": scored_at,
            }
            futures.append(self._producer.send(self.settings.topic_out, key=record["product_id"].encode(),
                                               value=orjson.dumps(prediction)))
        self._deliver(futures)
        self._account(served.variant, valid, scores, model.threshold, time.time_ns())

    def _deliver(self, futures: list[Any]) -> None:
        """Wait for the broker's acknowledgement of every record sent for this batch."""
        assert self._producer is not None
        self._producer.flush(timeout=10.0)
        failed = sum(not (f.is_done and f.succeeded()) for f in futures)
        if failed:
            raise DeliveryFailed(f"{failed} of {len(futures)} records not acknowledged")

    def _account(self, variant: str, rows: list[dict], scores: np.ndarray, threshold: float, acked_ns: int) -> None:
        m, stats = self.metrics, self.stats
        m.predictions.labels(variant).inc(len(rows))
        m.last_prediction.set(acked_ns / 1e9)
        hist = m.scores.labels(variant)
        for record, score in zip(rows, scores.tolist()):
            hist.observe(score)
            product = record["product_id"]
            m.last_score.labels(product).set(score)
            if score >= threshold:
                stats.alerts += 1
                m.spikes.labels(variant, product).inc()
            received_ns = _received_ns(record)
            if received_ns is not None:
                m.e2e.observe(max(0.0, (acked_ns - received_ns) / 1e9))
        stats.predictions += len(rows)

    def _reject(self, message: Any, reason: str, detail: str) -> Any:
        self.stats.invalid += 1
        self.metrics.invalid.labels(reason).inc()
        now = time.monotonic()
        self._logged = [t for t in self._logged if now - t < 60]
        if len(self._logged) < MAX_LOGGED_INVALID:
            self._logged.append(now)
            log.warning("rejected %s[%d]@%d: %s (%s)", message.topic, message.partition, message.offset, reason, detail)
        assert self._producer is not None
        return self._producer.send(self.settings.topic_dlq, key=message.key or b"", value=dlq_record(
            reason, detail, message.value or b"", "scorer", time.time_ns(), topic=message.topic,
            partition=message.partition, offset=message.offset, key=(message.key or b"").decode("utf-8", "replace")))

    def _commit(self, consumer: KafkaConsumer) -> None:
        try:
            consumer.commit()
            self.stats.commits += 1
        except KafkaError as exc:  # a rebalance: the rows are scored again by whoever gets them
            log.warning("offset commit failed (%s); some rows may be scored twice", exc)

    def _update_lag(self, consumer: KafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = consumer.position(tp, timeout_ms=500)
            except KafkaError:
                continue
            if position is not None:
                self.metrics.lag.labels(str(tp.partition)).set(max(0, high - position))
