"""The live feature consumer: ticks.raw -> FeaturePipeline -> ticks.features, Parquet parts, DLQ.

The records each poll returns for a partition go through ``FeaturePipeline.process_batch`` as
one micro-batch, the pipeline replay feeds, so the rows equal replay's for the same records. Records are keyed by product, so one product lives in one
partition and the feature state is kept per partition (``OwnedPartition``): a partition can
move to another featurizer of the group with its state (streaming/checkpoint.py).

Delivery: feature rows go to a producer in a child process (streaming/producer_process.py) after
every batch of records the consumer returns. Every flush (``flush_s`` or
``flush_rows``), in this order, the featurizer
  1. waits until the broker acknowledged every row and DLQ record sent so far,
  2. writes, per partition with new records, a Parquet part and then its checkpoint,
  3. commits those partitions' offsets to the group (for lag monitoring).
On assignment it takes the partition's lock, loads its checkpoint and seeks there, so the
union of the parts is exactly what replay gives, across restarts, crashes and failovers.
``ticks.raw`` is at least once: exact repeats of a raw record are dropped (``RecentRecords``).
``ticks.features`` is at least once too: rows computed after the last checkpoint of a crashed
featurizer are sent again by the next owner; readers drop repeats by (product_id, ts).

A watchdog asks the broker for the lag every ``check_s``; lag above zero with no progress for
``stall_s`` makes the featurizer leave the group and join again (state kept on disk).
"""

from __future__ import annotations

import gc
import logging
import pickle
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from common.kafka import close_quietly, dlq_record, ensure_topics, make_consumer
from features.online import FeatureSpec
from features.pipeline import FeatureBatch, FeaturePipeline, Summary
from streaming.checkpoint import (
    FeaturizerError,
    PartitionCheckpoint,
    PartitionLock,
    RecentRecords,
    checkpoint_path,
    load_checkpoint,
    part_path,
)
from streaming.parts import PartitionFlush, PartsWriter
from streaming.producer_process import ProducerGone, ProducerProcess, Record
from streaming.watch import LagProbe, StallWatch

log = logging.getLogger(__name__)

MAX_LOGGED_REJECTIONS = 10  # per flush interval; the rest are counted
FETCH_WAIT_MS = 20  # the broker may hold a fetch this long even when records arrive: bounds added latency
PRODUCER_OPTIONS = {"delivery_timeout_ms": 30_000, "linger_ms": 2, "batch_size": 262_144}
STATUS_EVERY_S = 10.0


@dataclass(frozen=True)
class FeaturizerSettings:
    bootstrap: str
    topic_in: str
    topic_out: str
    topic_dlq: str
    group: str
    out_dir: Path  # Parquet parts, checkpoints and partition locks of this group (shared by its members)
    topics: dict = field(default_factory=dict)  # name -> partitions, created when missing
    flush_s: float = 5.0
    flush_rows: int = 50_000
    poll_ms: int = 20  # kafka-python's poll() may wait its whole timeout though records came: keep it short
    check_s: float = 5.0  # how often the watchdog asks the broker for the lag
    stall_s: float = 30.0  # lag with no progress this long: leave the group and join again


def received_at(value: bytes) -> str | None:
    """The raw record's receive time, read from its fixed prefix without parsing the frame."""
    prefix = b'{"received_at":"'
    if value.startswith(prefix):
        end = value.find(b'"', len(prefix))
        if end > 0:
            return value[len(prefix):end].decode()
    return None


@dataclass
class Stats:
    records: int = 0
    rows: int = 0
    dlq: int = 0
    parts: int = 0
    flushes: int = 0
    commit_failures: int = 0
    redelivered: int = 0  # raw records seen before (at-least-once delivery), dropped
    assignments: int = 0  # partitions taken over (with their checkpoint when one exists)
    rejoins: int = 0  # times the watchdog made the featurizer join the group again


class OwnedPartition:
    """One input partition this featurizer holds: its lock, pipeline, position and unflushed rows."""

    def __init__(self, partition: int, lock: PartitionLock, pipeline: FeaturePipeline,
                 offset: int | None, next_part: int, topic_id: str | None, recent: RecentRecords) -> None:
        self.partition = partition
        self.recent = recent
        self.lock = lock
        self.pipeline = pipeline
        self.offset = offset  # next offset to read; None until the first record (no checkpoint)
        self.next_part = next_part
        self.topic_id = topic_id
        self.batches: list[FeatureBatch] = []  # rows computed since the last flush
        self.dirty = False  # records processed since the last flush


class Featurizer:
    """Consume, compute, publish, flush; ``stop()`` (from a signal handler) ends ``run()`` cleanly."""

    def __init__(self, settings: FeaturizerSettings, spec: FeatureSpec) -> None:
        self.settings = settings
        self.spec = spec
        self.columns = spec.columns
        self.stats = Stats()
        self.owned: dict[int, OwnedPartition] = {}
        self.waiting: set[int] = set()  # assigned, but another process still holds the lock
        self._handed_on: dict[int, Summary] = {}  # counters of partitions handed on, for the final report
        self._stop = threading.Event()
        self._writer = PartsWriter(spec, settings.out_dir)
        self._outbox: list[Record] = []  # computed, not yet handed to the producer process
        self._unacked: list[Record] = []  # handed over since the last acknowledged flush (resent if it dies)
        self._topic_id: str | None = None
        self._consumer: KafkaConsumer | None = None
        self._producer: ProducerProcess | None = None
        self._probe = LagProbe(settings.bootstrap, settings.topic_in, settings.group)
        self._watch = StallWatch(settings.stall_s)
        self._fatal: FeaturizerError | None = None  # raised by the loop (callbacks must not raise)
        self._logged_rejections = 0
        self.clean = True  # False when the last flush could not complete

    def stop(self) -> None:
        self._stop.set()

    # -- setup --------------------------------------------------------------------------

    def open(self) -> None:
        """Create the topics, connect, join the group. Raises BrokerUnavailable."""
        self.settings.out_dir.mkdir(parents=True, exist_ok=True)
        infos = ensure_topics(self.settings.bootstrap, self.settings.topics)
        info = infos.get(self.settings.topic_in)
        self._topic_id = str(info.topic_id) if info is not None and info.topic_id is not None else None
        self._producer = ProducerProcess(self.settings.bootstrap, self.settings.topics, PRODUCER_OPTIONS)
        self._join()
        gc.collect()
        gc.freeze()  # long-lived objects out of the collector's way: shorter pauses between rows

    def _join(self) -> None:
        s = self.settings
        self._consumer = make_consumer(s.bootstrap, s.group, fetch_max_wait_ms=FETCH_WAIT_MS,
                                       max_poll_records=2000, client_id=f"featurizer-{s.group}")
        self._consumer.subscribe([s.topic_in], listener=_Rebalance(self))

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> Stats:
        s = self.settings
        now = time.monotonic()
        last_flush, next_check, next_status = now, now + s.check_s, now + STATUS_EVERY_S
        try:
            while not self._stop.is_set():
                assert self._consumer is not None
                batch = self._consumer.poll(timeout_ms=s.poll_ms)
                if self._fatal is not None:
                    raise self._fatal
                for tp, records in batch.items():
                    owned = self.owned.get(tp.partition)
                    if owned is None:
                        continue  # revoked meanwhile; the next owner reads these again
                    self._process(owned, records)
                self._ship()
                now = time.monotonic()
                if self._rows_pending() >= s.flush_rows or now - last_flush >= s.flush_s:
                    self.flush()
                    last_flush = now
                elif batch:
                    self._commit_written()
                if self.waiting:
                    self._take_waiting()
                if now >= next_check:
                    next_check = now + s.check_s
                    self._check_stall(now)
                if now >= next_status:
                    next_status = now + STATUS_EVERY_S
                    log.info("status: %s", self.status())
                self._writer.raise_failure()
            self.flush(wait=True)
        finally:
            self.close()
        return self.stats

    def _rows_pending(self) -> int:
        return sum(len(b) for o in self.owned.values() for b in o.batches)

    def status(self) -> str:
        return (f"records {self.stats.records}, rows {self.stats.rows}, dlq {self.stats.dlq}, "
                f"partitions {sorted(self.owned)}" + (f", waiting for {sorted(self.waiting)}" if self.waiting else ""))

    def _process(self, owned: OwnedPartition, messages: list[Any]) -> None:
        """One partition's records of a poll: drop exact repeats, then one pipeline call for the rest."""
        stats = self.stats
        fresh: list[tuple[Any, bytes]] = []
        for message in messages:
            value = message.value if message.value is not None else b""
            stats.records += 1
            if owned.recent.repeat(value):
                stats.redelivered += 1
            else:
                fresh.append((message, value))
        if not messages:
            return
        owned.offset = messages[-1].offset + 1
        owned.dirty = True
        if not fresh:
            return
        batch, rejections = owned.pipeline.process_batch([value for _, value in fresh])
        if len(batch):
            topic_out, columns = self.settings.topic_out, self.columns
            for row, line in zip(batch.rows(), batch.line.tolist()):
                record = dict(zip(columns, row))
                stamp = received_at(fresh[line][1])
                if stamp is not None:
                    record["received_at"] = stamp
                self._send(topic_out, row[0].encode(), orjson.dumps(record))
            owned.batches.append(batch)
            stats.rows += len(batch)
        for line in sorted(rejections):
            message, value = fresh[line]
            for rejection in rejections[line]:
                stats.dlq += 1
                if self._logged_rejections < MAX_LOGGED_REJECTIONS:
                    self._logged_rejections += 1
                    log.warning("rejected %s[%d]@%d: %s (%s)", message.topic, message.partition, message.offset,
                                rejection.reason, rejection.detail[:200])
                self._send(self.settings.topic_dlq, message.key or b"", dlq_record(
                    rejection.reason, rejection.detail, value, "featurizer", time.time_ns(),
                    topic=message.topic, partition=message.partition, offset=message.offset,
                    key=(message.key or b"").decode("utf-8", "replace")))

    def _send(self, topic: str, key: bytes, value: bytes) -> None:
        self._outbox.append((topic, key, value))

    def _ship(self) -> None:
        """Hand the records computed so far to the producer process (a new one if it died)."""
        if not self._outbox:
            return
        chunk, self._outbox = self._outbox, []
        self._unacked.extend(chunk)
        try:
            assert self._producer is not None
            self._producer.send(chunk)
        except ProducerGone as exc:
            self._restart_producer(exc)

    def _restart_producer(self, why: Exception) -> None:
        log.warning("%s: starting another and sending the %d records it had not confirmed", why, len(self._unacked))
        if self._producer is not None:
            self._producer.close(timeout_s=1.0)
        self._producer = ProducerProcess(self.settings.bootstrap, self.settings.topics, PRODUCER_OPTIONS)
        self._producer.send(self._unacked)

    # -- flush: outputs, checkpoints, commit ----------------------------------------------

    def flush(self, wait: bool = False, commit: bool = True, partitions: set[int] | None = None) -> bool:
        """Make everything processed so far durable; False when the broker never acknowledged.

        ``partitions`` limits the files to those partitions (a revocation), after delivering
        every record sent so far. ``wait`` blocks until the files are written.
        """
        dirty = [o for p, o in sorted(self.owned.items()) if o.dirty and (partitions is None or p in partitions)]
        if dirty:
            if not self._deliver():
                self.clean = False
                return False
            self._writer.submit([self._snapshot(o) for o in dirty])
            if self._logged_rejections >= MAX_LOGGED_REJECTIONS:
                log.warning("%d rejections in all so far (see %s)", self.stats.dlq, self.settings.topic_dlq)
            self._logged_rejections = 0
            self.stats.flushes += 1
        if wait:
            self._writer.wait()
        if commit:
            self._commit_written()
        return True

    def _snapshot(self, owned: OwnedPartition) -> PartitionFlush:
        """The partition's part and checkpoint as of now (the state moves on while they are written)."""
        s = self.settings
        part = None
        if owned.batches:
            part = part_path(s.out_dir, owned.partition, owned.next_part)
            owned.next_part += 1
            self.stats.parts += 1
        assert owned.offset is not None  # dirty: a record was processed
        checkpoint = PartitionCheckpoint(self.spec, s.topic_in, owned.topic_id, owned.partition, owned.offset,
                                         owned.pipeline.states, owned.pipeline.summary, owned.next_part,
                                         owned.recent.dump())
        flush = PartitionFlush(owned.partition, part, owned.batches, checkpoint_path(s.out_dir, owned.partition),
                               pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL), owned.offset)
        owned.batches = []
        owned.dirty = False
        return flush

    def _commit_written(self) -> None:
        """Commit the offsets the writer has made durable, for the partitions still owned."""
        written = self._writer.take_written()
        if not written or self._consumer is None:
            return
        topic = self.settings.topic_in
        offsets = {TopicPartition(topic, p): OffsetAndMetadata(offset, "", -1)
                   for p, offset in written.items() if p in self.owned}
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:  # rebalancing or broker gone: the checkpoints still hold them
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%s); the checkpoints keep the positions", exc)

    def _deliver(self) -> bool:
        """Wait until the broker has every record computed so far (the producer process retries).

        Gives up only when asked to stop: the unacknowledged rows are then recomputed from the
        last checkpoints on the next start.
        """
        self._ship()
        while True:
            try:
                assert self._producer is not None
                if self._producer.flush(timeout_s=5.0 if self._stop.is_set() else 30.0):
                    self._unacked.clear()
                    return True
            except ProducerGone as exc:
                self._restart_producer(exc)
                continue
            if self._stop.is_set():
                log.error("stopping with %d records not acknowledged; the next start recomputes them "
                          "from the last checkpoints", len(self._unacked))
                return False
            log.warning("%d records still not acknowledged by %s; waiting", len(self._unacked), self.settings.bootstrap)

    # -- partitions: take over with the checkpoint, hand on after a flush ----------------------

    def on_assigned(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.partition not in self.owned:
                self.waiting.add(tp.partition)
        self._take_waiting()
        log.info("assigned %s", sorted(tp.partition for tp in partitions))

    def _take_waiting(self) -> None:
        """Take every waiting partition whose lock is free; the others stay paused until it is."""
        assert self._consumer is not None
        for partition in sorted(self.waiting):
            tp = TopicPartition(self.settings.topic_in, partition)
            lock = PartitionLock(self.settings.out_dir, partition)
            if not lock.acquire():
                self._consumer.pause(tp)
                continue
            try:
                owned = self._restore(partition, lock)
            except FeaturizerError as exc:
                lock.release()
                self._fatal = exc
                return
            self.waiting.discard(partition)
            self._handed_on.pop(partition, None)  # its checkpoint's counters include them
            self.owned[partition] = owned
            self.stats.assignments += 1
            if owned.offset is not None:
                self._consumer.seek(tp, owned.offset)
            self._consumer.resume(tp)

    def _restore(self, partition: int, lock: PartitionLock) -> OwnedPartition:
        s = self.settings
        checkpoint = load_checkpoint(s.out_dir, self.spec, s.topic_in, partition)
        pipeline = FeaturePipeline(self.spec)
        if checkpoint is None:
            log.info("%s[%d]: no checkpoint; starting at the committed offset (or the earliest)", s.topic_in, partition)
            return OwnedPartition(partition, lock, pipeline, None, 1, self._topic_id, RecentRecords())
        if checkpoint.topic_id and self._topic_id and checkpoint.topic_id != self._topic_id:
            raise FeaturizerError(
                f"{s.topic_in} was deleted and created again since {checkpoint_path(s.out_dir, partition)} was "
                f"written (topic id {self._topic_id}, was {checkpoint.topic_id}): its offsets mean nothing now. "
                f"Move {s.out_dir} away to start afresh (an in-memory demo broker loses its topics on restart)")
        pipeline.restore(checkpoint.states)
        pipeline.summary = checkpoint.summary
        log.info("%s[%d]: restored the state of %d products; resuming at offset %d",
                 s.topic_in, partition, len(checkpoint.states), checkpoint.offset)
        return OwnedPartition(partition, lock, pipeline, checkpoint.offset, checkpoint.next_part, checkpoint.topic_id,
                              RecentRecords(digests=checkpoint.recent))

    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        """Write the revoked partitions' parts and checkpoints, then let them go (the next owner loads them)."""
        revoked = {tp.partition for tp in partitions}
        self.waiting -= revoked
        mine = revoked & set(self.owned)
        if not mine:
            return
        self.flush(wait=True, commit=False, partitions=mine)
        for partition in sorted(mine):
            owned = self.owned.pop(partition)
            if owned.dirty:  # delivery failed (stopping): the checkpoint stays where it was
                log.warning("%s[%d] handed on without its latest records; its next owner recomputes them",
                            self.settings.topic_in, partition)
            self._handed_on[partition] = owned.pipeline.summary
            owned.lock.release()

    # -- the watchdog ---------------------------------------------------------------------

    def _check_stall(self, now: float) -> None:
        offsets = self._probe.offsets(list(range(self.settings.topics.get(self.settings.topic_in, 1))))
        if offsets is None:
            return
        positions = {p: o.offset for p, o in self.owned.items() if o.offset is not None}
        positions.update({p: offsets.committed.get(p, 0) for p, o in self.owned.items() if o.offset is None})
        lag = self._watch.observe(now, positions, offsets)
        if lag:
            log.warning("%d records wait in %s and nothing moved for %.0f s: leaving the group and joining again",
                        lag, self.settings.topic_in, self.settings.stall_s)
            self.rejoin()

    def rejoin(self) -> None:
        """Hand every partition on (after a flush), drop the consumer, and join the group afresh."""
        self.stats.rejoins += 1
        self.on_revoked([TopicPartition(self.settings.topic_in, p) for p in list(self.owned)])
        self.waiting.clear()
        close_quietly([self._consumer])
        self._watch.reset()
        self._join()

    # -- the end --------------------------------------------------------------------------

    def summary(self) -> dict:
        """Counters of the partitions this featurizer holds or held, summed."""
        total: Counter = Counter()
        nested: dict[str, Counter] = {"rejected": Counter(), "skipped_frames": Counter()}
        for summary in [*self._handed_on.values(), *(o.pipeline.summary for o in self.owned.values())]:
            for name, value in summary.as_dict().items():
                if isinstance(value, dict):
                    nested[name].update(value)
                else:
                    total[name] += value
        return {**total, **{name: dict(sorted(c.items())) for name, c in nested.items()}}

    def close(self) -> None:
        self._writer.stop()
        for owned in self.owned.values():
            owned.lock.release()
        self._probe.close()
        close_quietly([self._consumer])
        if self._producer is not None:
            self._producer.close()
        self._consumer = self._producer = None


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, featurizer: Featurizer) -> None:
        self.featurizer = featurizer

    def on_partitions_revoked(self, revoked):
        self.featurizer.on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned):
        self.featurizer.on_assigned(list(assigned))
