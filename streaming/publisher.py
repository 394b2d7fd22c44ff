"""Deliver records to Kafka in order, spooling to disk while the broker is unreachable.

The WebSocket thread never waits on Kafka: it hands records to ``Publisher.submit`` and a
single background thread owns the producer. That thread is in one of two modes:

* online: records go straight to the producer; acknowledgements are reaped in order;
* spooling: records are appended to the on-disk spool; every ``retry_s`` (growing to
  ``retry_max_s``) it reconnects, creates missing topics (a restarted local broker has lost
  them), sends the whole spool, and returns online only once every spooled record was
  acknowledged.

The first failed or timed-out record moves it (and every record after it that is not yet
acknowledged) to the spool, so the order of records in the topic is the order of arrival;
a record may be delivered twice around an outage (at least once), never lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.errors import KafkaError

from common.kafka import BrokerUnavailable, close_quietly, ensure_topics, key_partition, make_producer
from streaming.sinks import Spool

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 << 10  # spool records sent per round trip when draining
DRAIN_BATCH_BYTES = 1 << 20  # > CHUNK_BYTES: a chunk's records for one partition fit one batch


def _chunks(records: list, limit: int) -> list[list]:
    """Consecutive runs of records of at most ``limit`` value bytes (a bigger record goes alone)."""
    chunks: list[list] = []
    size = limit
    for record in records:
        if size + len(record[2]) > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(record)
        size += len(record[2])
    return chunks


@dataclass
class PublisherStats:
    acked: Counter = field(default_factory=Counter)  # topic -> records acknowledged by the broker
    spooled: int = 0  # records written to the spool by this run
    spool_recovered: int = 0  # records found in the spool at start (an earlier run's)
    outages: int = 0  # times the broker became unreachable


class Publisher:
    """One producer thread with an ordered in-memory queue and a disk spool behind it."""

    def __init__(
        self,
        bootstrap: str,
        topics: dict[str, int],
        spool: Spool,
        retry_s: float = 1.0,
        retry_max_s: float = 15.0,
        producer_options: dict | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.spool = spool
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.producer_options = producer_options or {}
        self.stats = PublisherStats(spool_recovered=spool.pending)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._inflight: deque = deque()
        self._producer: KafkaProducer | None = None
        self._spooling = True  # until the first connection succeeds (or the spool is delivered)
        self._next_try = 0.0
        self._delay = retry_s
        self._closing = threading.Event()
        self._finish_timeout_s = 10.0
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one record; never blocks and never raises for broker trouble."""
        self._queue.put((topic, key, value))

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver or spool everything submitted so far, then stop the thread."""
        self._closing.set()
        self._finish_timeout_s = timeout_s
        self._queue.put(None)
        self._thread.join(timeout_s + 5.0)
        if self._thread.is_alive():
            log.error("publisher did not stop in time; unsent records stay in memory and are lost")

    @property
    def online(self) -> bool:
        return not self._spooling

    # -- the publisher thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if self._spooling and time.monotonic() >= self._next_try:
                self._drain()  # first thing at start too: records wait in memory for the first connection
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                item = False
            if item is None:
                break
            if item:
                self._handle(item)
            self._reap()
        self._finish()

    def _handle(self, item: tuple[str, bytes | None, bytes]) -> None:
        if self._spooling:
            self._to_spool([item])
            return
        assert self._producer is not None
        try:
            future = self._producer.send(item[0], key=item[1], value=item[2],
                                         partition=self._partition(self._producer, item[0], item[1]))
        except KafkaError as exc:  # metadata unavailable: the topic is gone or the broker is down
            self._go_offline(f"send failed: {exc}", [item])
            return
        self._inflight.append((item, future))

    def _partition(self, producer: KafkaProducer, topic: str, key: bytes | None) -> int | None:
        """The key's partition over the configured partition count, not the broker's.

        A restarted in-memory broker may auto-create a topic with another partition count
        before we recreate it; keys then keep the partitions the consumers are assigned.
        """
        if key is None:
            return None
        available = len(producer.partitions_for(topic) or ())
        if not available:
            return None  # send() waits for the topic and fails as usual
        return key_partition(key, min(self.topics.get(topic, available), available))

    def _reap(self) -> None:
        """Count acknowledged records in order; the first failure sends the rest to the spool."""
        inflight = self._inflight
        while inflight and inflight[0][1].is_done:
            item, future = inflight[0]
            if future.failed():
                self._go_offline(f"delivery failed: {future.exception}", [])
                return
            inflight.popleft()
            self._acked(item[0])

    def _acked(self, topic: str) -> None:
        self.stats.acked[topic] += 1

    def _go_offline(self, why: str, extra: list) -> None:
        pending = [item for item, _ in self._inflight] + extra
        self._inflight.clear()
        if not self._spooling:
            self.stats.outages += 1
            log.warning("Kafka at %s unreachable (%s); spooling to %s", self.bootstrap, why, self.spool.path)
        self._spooling = True
        close_quietly([self._producer])  # drop its buffer: the spool now owns these records
        self._producer = None
        self._to_spool(pending)
        self._delay = self.retry_s
        self._next_try = time.monotonic() + self._delay

    def _to_spool(self, items: list) -> None:
        for topic, key, value in items:
            self.spool.append(topic, key, value)
            self.stats.spooled += 1

    def _drain(self) -> None:
        """Reconnect and deliver the spool in order; stay spooling on any failure."""
        records = self.spool.records()
        try:
            if self._producer is None:
                ensure_topics(self.bootstrap, self.topics)  # a restarted local broker has none
            if records:
                log.info("delivering %d spooled records to %s", len(records), self.bootstrap)
                self._send_in_order(records)
            producer = self._producer or make_producer(self.bootstrap, **self.producer_options)
        except (BrokerUnavailable, KafkaError) as exc:
            self._retry_later(f"{exc}")
            return
        self._producer = producer
        for topic, _, _ in records:
            self._acked(topic)
        self.spool.clear()
        self._spooling = False
        self._delay = self.retry_s
        if records:
            log.info("Kafka at %s is back; %d spooled records delivered", self.bootstrap, len(records))
        else:
            log.info("connected to Kafka at %s", self.bootstrap)

    def _send_in_order(self, records: list[tuple[str, bytes | None, bytes]]) -> None:
        """Send chunk after chunk, each chunk one batch per partition, waiting for each.

        A batch is written whole or not at all, and the next chunk leaves only once this one
        is acknowledged, so no record is ever written after a newer one of its partition
        (which the featurizer would have to refuse as late). A failed attempt may leave
        earlier chunks written: the next attempt sends them again (harmless duplicates).
        """
        drain = make_producer(self.bootstrap, **{**self.producer_options, "linger_ms": 10_000,
                                                 "delivery_timeout_ms": 40_000, "batch_size": DRAIN_BATCH_BYTES})
        try:
            for chunk in _chunks(records, CHUNK_BYTES):
                futures = [drain.send(t, key=k, value=v, partition=self._partition(drain, t, k)) for t, k, v in chunk]
                drain.flush(timeout=30.0)  # flush() sends the lingering batches at once
                failed = next((f for f in futures if not f.is_done or f.failed()), None)
                if failed is not None:
                    raise KafkaError(f"spool delivery failed: {failed.exception or 'timeout'}")
        finally:
            close_quietly([drain])

    def _retry_later(self, why: str) -> None:
        close_quietly([self._producer])
        self._producer = None
        log.warning("Kafka at %s still unreachable (%s); retrying in %.1f s", self.bootstrap, why, self._delay)
        self._next_try = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.retry_max_s)

    def _finish(self) -> None:
        """At close: acknowledge or spool every record, then close the producer and the spool."""
        flush_timeout_s = self._finish_timeout_s
        if not self._spooling and self._producer is not None:
            try:
                self._producer.flush(timeout=flush_timeout_s)
            except KafkaError as exc:
                log.warning("final flush failed: %s", exc)
            self._reap()
            if self._inflight:
                self._go_offline("not acknowledged at shutdown", [])
        deadline = time.monotonic() + flush_timeout_s
        while self._spooling and self.spool.pending and time.monotonic() < deadline:
            self._drain()  # last attempts, so that a short outage does not leave a spool behind
            if self._spooling:
                time.sleep(0.5)
        close_quietly([self._producer])
        self._producer = None
        self.spool.close()
        if self.spool.pending:
            log.warning("%d records stay in the spool %s; the next run delivers them first",
                        self.spool.pending, self.spool.path)
