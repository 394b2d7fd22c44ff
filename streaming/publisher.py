"""Ship the ingestor's journal to Kafka, in order, whatever the broker does.

The WebSocket thread calls ``Publisher.submit``: the record is appended to the journal (on
disk, before anything else) and queued; it never waits on Kafka. One background thread owns
the producer and is in one of two modes:

* online: queued records go straight to the producer; acknowledgements are reaped in order
  and advance the journal's acknowledged offset;
* offline: the first failed or timed-out record stops the producer for real (its thread ends,
  so two producers never write at once) and the journal becomes the spool. Every ``retry_s``
  (doubling up to ``retry_max_s``) it reconnects, creates missing topics, and sends the
  journal from the acknowledged offset, chunk after acknowledged chunk, until it has caught up;
  then it goes online again.

A record Kafka can never take (too large, invalid) is not an outage: it goes to the DLQ with
its size and a prefix, counted, and the records behind it flow on. Delivery is at least once:
around an outage or a crash a record may arrive twice (the featurizer's acceptance rules drop
the repeat); none is lost and none is overtaken by a newer one of its product.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from common.kafka import BrokerUnavailable, dlq_record, ensure_topics, make_producer, stop_producer
from streaming.journal import SKIP, Entry, Journal

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 << 10  # journal bytes sent per acknowledged round trip when catching up
DRAIN_OPTIONS = {"linger_ms": 100, "batch_size": 1 << 20, "delivery_timeout_ms": 30_000, "request_timeout_ms": 10_000}
RECORD_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidRecordError, CorruptRecordError)


@dataclass
class PublisherStats:
    acked: Counter = field(default_factory=Counter)  # topic -> records acknowledged by the broker
    spooled: int = 0  # records sent from the journal file after waiting for the broker
    recovered: int = 0  # unacknowledged records an earlier run left in the journal
    outages: int = 0  # times the broker became unreachable
    refused: int = 0  # records the broker can never take, sent to the DLQ instead


class Publisher:
    """One producer thread over the journal; ``topic_dlq`` receives the records Kafka refuses."""

    def __init__(
        self,
        bootstrap: str,
        topics: dict[str, int],
        journal: Journal,
        topic_dlq: str,
        retry_s: float = 1.0,
        retry_max_s: float = 15.0,
        producer_options: dict | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.journal = journal
        self.topic_dlq = topic_dlq
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.producer_options = {"delivery_timeout_ms": 10_000, **(producer_options or {})}
        self.stats = PublisherStats()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._inflight: deque[tuple[Entry, object]] = deque()  # (entry, future or None when settled)
        self._producer: KafkaProducer | None = None
        self._online = False  # starts offline: the journal may hold an earlier run's records
        self._next_try = 0.0
        self._delay = retry_s
        self._finish_timeout_s = 10.0
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.stats.recovered = journal.pending_records()

    def start(self) -> None:
        self._thread.start()

    def submit(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Journal one record and queue it; never blocks on Kafka and never raises for broker trouble."""
        self._queue.put(self.journal.append(topic, key, value))

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what the broker takes within ``timeout_s``, then stop; the rest stays journaled."""
        self._finish_timeout_s = timeout_s
        self._queue.put(None)
        self._thread.join(timeout_s + 15.0)
        if self._thread.is_alive():
            log.error("the publisher did not stop in time; the journal %s keeps every record it had not "
                      "delivered, and the next run sends them", self.journal.path)

    @property
    def online(self) -> bool:
        return self._online

    @property
    def pending(self) -> int:
        """Records in the journal that Kafka has not acknowledged (reads the file: for reports)."""
        return self.journal.pending_records()

    # -- the publisher thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if not self._online and time.monotonic() >= self._next_try:
                self._catch_up()
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                item = False
            if item is None:
                break
            if item and self._online:
                self._send(item)
            self._reap()
            self.journal.save_mark()
            if self._online and not self._inflight:
                self.journal.compact()
        self._finish()

    def _send(self, entry: Entry) -> None:
        if self.journal.is_done(entry):
            return  # sent from the file while catching up
        if entry.topic == SKIP:
            self._inflight.append((entry, None))
            return
        assert self._producer is not None
        try:
            future = self._producer.send(entry.topic, key=entry.key, value=entry.value)
        except RECORD_ERRORS as exc:
            self._refuse(entry, exc)
            self._inflight.append((entry, None))
            return
        except KafkaError as exc:  # metadata unavailable: the topic is gone or the broker is down
            self._go_offline(f"send failed: {exc}")
            return
        self._inflight.append((entry, future))

    def _reap(self) -> None:
        """Acknowledge in journal order; the first failure takes the publisher offline."""
        inflight = self._inflight
        while inflight:
            entry, future = inflight[0]
            if future is not None:
                if not future.is_done:
                    return
                if future.failed():
                    if not isinstance(future.exception, RECORD_ERRORS):
                        self._go_offline(f"delivery failed: {future.exception}")
                        return
                    self._refuse(entry, future.exception)
                else:
                    self.stats.acked[entry.topic] += 1
            inflight.popleft()
            self.journal.ack(entry)

    def _refuse(self, entry: Entry, exc: BaseException) -> None:
        """A record Kafka will never take: to the DLQ (bounded), behind everything queued so far."""
        self.stats.refused += 1
        log.error("%s refused a %d-byte record for %s (%s): sending it to %s", self.bootstrap,
                  len(entry.value), entry.topic, type(exc).__name__, self.topic_dlq)
        if entry.topic == self.topic_dlq:
            return  # a DLQ record is bounded and never this large; nothing sensible is left to do
        record = dlq_record("refused_by_broker", f"{type(exc).__name__}: {exc}", entry.value, "ws_ingest",
                            time.time_ns(), topic=entry.topic, key=(entry.key or b"").decode("utf-8", "replace"))
        self.submit(self.topic_dlq, entry.key, record)

    def _go_offline(self, why: str) -> None:
        """Stop the producer for real; the journal from the acknowledged offset is now the spool."""
        if self._online:
            self.stats.outages += 1
            log.warning("Kafka at %s unreachable (%s); records wait in %s", self.bootstrap, why, self.journal.path)
        self._online = False
        self._inflight.clear()
        self._stop_producer()
        self._next_try = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.retry_max_s)

    def _stop_producer(self) -> None:
        if self._producer is not None:
            try:
                stop_producer(self._producer)
            except RuntimeError as exc:  # never seen; the next producer would race it, so say so loudly
                log.error("%s: the old producer may still deliver some records twice", exc)
            self._producer = None

    def _catch_up(self) -> None:
        """Reconnect and send the journal from the acknowledged offset; online once caught up."""
        try:
            ensure_topics(self.bootstrap, self.topics)
            producer = make_producer(self.bootstrap, **{**self.producer_options, **DRAIN_OPTIONS})
        except (BrokerUnavailable, KafkaError) as exc:
            self._retry_later(f"{exc}")
            return
        self._producer = producer
        sent = 0
        try:
            while self.journal.pending_bytes:
                sent += self._send_chunk(list(self.journal.unacked(CHUNK_BYTES)))
        except KafkaError as exc:
            self._stop_producer()
            self._retry_later(f"{exc}")
            return
        self._stop_producer()  # catching-up settings (long linger, big batches) are wrong for live records
        try:
            self._producer = make_producer(self.bootstrap, **self.producer_options)
        except (BrokerUnavailable, KafkaError) as exc:
            self._retry_later(f"{exc}")
            return
        self._online = True
        self._delay = self.retry_s
        if sent:
            self.stats.spooled += sent
            log.info("Kafka at %s took %d journaled records; live again", self.bootstrap, sent)
        else:
            log.info("connected to Kafka at %s", self.bootstrap)

    def _send_chunk(self, entries: list[Entry]) -> int:
        """Send a run of journal records and wait for all of them; raises KafkaError on any failure."""
        assert self._producer is not None
        futures = []
        for entry in entries:
            if entry.topic == SKIP:
                futures.append(None)
                continue
            try:
                futures.append(self._producer.send(entry.topic, key=entry.key, value=entry.value))
            except RECORD_ERRORS as exc:
                self._refuse(entry, exc)
                futures.append(None)
        self._producer.flush(timeout=40.0)
        for entry, future in zip(entries, futures):
            if future is not None:
                if not future.is_done:
                    raise KafkaError("journal delivery timed out")
                if future.failed():
                    if not isinstance(future.exception, RECORD_ERRORS):
                        raise KafkaError(f"journal delivery failed: {future.exception}")
                    self._refuse(entry, future.exception)
                else:
                    self.stats.acked[entry.topic] += 1
            self.journal.ack(entry)
        return len(entries)

    def _retry_later(self, why: str) -> None:
        log.warning("Kafka at %s still unreachable (%s); retrying in %.1f s", self.bootstrap, why, self._delay)
        self._next_try = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.retry_max_s)

    def _finish(self) -> None:
        """At close: deliver what is queued and in flight, catch up while time is left, stop."""
        deadline = time.monotonic() + self._finish_timeout_s
        if self._online:
            while not self._queue.empty():
                item = self._queue.get()
                if item and self._online:
                    self._send(item)
            if self._producer is not None:
                try:
                    self._producer.flush(timeout=max(0.1, deadline - time.monotonic()))
                except KafkaError as exc:
                    log.warning("final flush failed: %s", exc)
            self._reap()
        if self.journal.pending_bytes and self._online:
            self._go_offline("records unacknowledged at shutdown")
        while self.journal.pending_bytes and time.monotonic() < deadline:
            self._catch_up()
            if self.journal.pending_bytes:
                time.sleep(0.5)
        self._stop_producer()
        self.journal.close()
        if self.journal.pending_bytes:
            log.warning("%d records stay in %s; the next run delivers them first", self.pending, self.journal.path)
