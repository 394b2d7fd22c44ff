"""The live feature consumer: ticks.raw -> FeaturePipeline -> ticks.features, Parquet parts, DLQ.

Every raw record goes through ONE ``FeaturePipeline.process``, the call replay makes, so the
rows equal replay's for the same records. Per-product order holds because records are keyed
by product: one product lives in one partition, and a partition is read in order. Records of
different partitions interleave, which does not matter since the state is per product.

Delivery: feature rows are sent as soon as they are computed (low latency). Every flush
(``flush_s`` or ``flush_rows``) then, in this order,
  1. waits until the broker acknowledged every row and DLQ record sent so far,
  2. writes the rows as one Parquet part (tmp file + rename),
  3. writes the checkpoint (tmp file + rename): feature state, counters, the next offset per
     partition, the topic id and the next part number,
  4. commits the offsets to the consumer group.
The checkpoint is the truth on restart: the featurizer seeks to its offsets with its state,
so the Parquet parts are exactly what replay gives (a crash between 2 and 3 rewrites the same
part name from the same state). ``ticks.features`` is at least once: rows computed after the
last checkpoint are sent again after a crash; readers drop repeats by (product_id, ts).

The local broker keeps topics in memory. When a topic comes back with another id (the broker
was restarted), its partitions are read from the start, keeping the feature state: records
the state has already seen are refused as duplicates or late by the acceptance rules.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import pickle
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from common.kafka import (
    BOOTSTRAP_TIMEOUT_MS,
    BrokerUnavailable,
    KeyPartitioner,
    close_quietly,
    dlq_record,
    ensure_topics,
    make_consumer,
    make_producer,
)
from features.online import FeatureSpec
from features.pipeline import FeaturePipeline, Summary
from features.replay import TableBuilder, write_parquet

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "_checkpoint.pkl"
CHECKPOINT_VERSION = 1
LOCK_NAME = ".lock"
MAX_LOGGED_REJECTIONS = 10  # per flush interval; the rest are counted
QUIET_CHECK_S = 1.0  # records after a pause this long are checked against the broker's topic id first
FETCH_WAIT_MS = 20  # the broker may hold a fetch this long even when records arrive: bounds added latency
PRODUCER_OPTIONS = {"delivery_timeout_ms": 30_000, "linger_ms": 2, "batch_size": 262_144}


class FeaturizerError(RuntimeError):
    """A condition the operator must fix; the message says how."""


@dataclass(frozen=True)
class FeaturizerSettings:
    bootstrap: str
    topic_in: str
    topic_out: str
    topic_dlq: str
    group: str
    out_dir: Path  # Parquet parts and the checkpoint of this group
    topics: dict = field(default_factory=dict)  # name -> partitions, created when missing
    flush_s: float = 5.0
    flush_rows: int = 50_000
    poll_ms: int = 20  # kafka-python's poll() may wait its whole timeout though records came: keep it short


@dataclass
class Position:
    offset: int  # next offset to read
    topic_id: str | None


@dataclass
class Checkpoint:
    """What a restart needs: written atomically after the outputs, before the commit."""

    spec: FeatureSpec
    topic: str
    positions: dict[int, Position]
    states: dict
    summary: Summary
    next_part: int
    version: int = CHECKPOINT_VERSION


def load_checkpoint(path: Path, spec: FeatureSpec, topic: str) -> Checkpoint | None:
    if not path.exists():
        return None
    try:
        with open(path, "rb") as handle:
            checkpoint = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
        raise FeaturizerError(f"{path} cannot be read ({exc}): move it away to start from committed offsets") from exc
    if not isinstance(checkpoint, Checkpoint) or checkpoint.version != CHECKPOINT_VERSION:
        raise FeaturizerError(f"{path} is not a checkpoint of this version: move it away to start afresh")
    if checkpoint.spec != spec or checkpoint.topic != topic:
        raise FeaturizerError(
            f"{path} was written for {checkpoint.topic} with {checkpoint.spec}; now {topic} with {spec}: "
            "use another --group or move the directory away")
    return checkpoint


def save_checkpoint(path: Path, checkpoint: Checkpoint | bytes) -> None:
    """Atomic and durable: a reader sees the old or the new checkpoint, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    data = checkpoint if isinstance(checkpoint, bytes) else pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


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
    topic_resets: int = 0
    topic_checks: int = 0  # times the input topic's id was asked of the broker


class Featurizer:
    """Consume, compute, publish, flush; ``stop()`` (from a signal handler) ends ``run()`` cleanly."""

    def __init__(self, settings: FeaturizerSettings, spec: FeatureSpec) -> None:
        self.settings = settings
        self.spec = spec
        self.columns = spec.columns
        self.pipeline = FeaturePipeline(spec)
        self.stats = Stats()
        self.positions: dict[int, Position] = {}  # processed so far (in memory)
        self.flushed: dict[int, Position] = {}  # as of the last checkpoint
        self.next_part = 1
        self.checkpoint_path = settings.out_dir / CHECKPOINT_NAME
        self._stop = threading.Event()
        self._rows: list[list] = []
        self._writer = _Writer(self.spec, self.checkpoint_path)
        self._sent: list[tuple[str, bytes, bytes, Any]] = []  # (topic, key, value, future) since the flush
        self._topic_id: str | None = None  # the input topic's id, as the broker last told
        self._metadata_topic_id: str | None = None  # ... and as the consumer's metadata last showed
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._admin: KafkaAdminClient | None = None
        self._partition_of: dict[str, KeyPartitioner] = {}  # topic -> cached key partitioner
        self._lock_fd = -1
        self._logged_rejections = 0
        self._dirty = False  # processed records not yet in a checkpoint
        self.clean = True  # False when the last flush could not complete

    def stop(self) -> None:
        self._stop.set()

    # -- setup --------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the output directory, restore the checkpoint, connect. Raises FeaturizerError/BrokerUnavailable."""
        s = self.settings
        s.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(s.out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise FeaturizerError(f"another featurizer writes to {s.out_dir}: run one per group "
                                  "(the state of a group lives in one directory)") from exc
        checkpoint = load_checkpoint(self.checkpoint_path, self.spec, s.topic_in)
        if checkpoint is not None:
            self.pipeline.states = checkpoint.states
            self.pipeline.summary = checkpoint.summary
            self.positions = dict(checkpoint.positions)
            self.flushed = dict(checkpoint.positions)
            self.next_part = checkpoint.next_part
            log.info("restored the state of %d products; resuming at %s", len(checkpoint.states),
                     {p: pos.offset for p, pos in sorted(checkpoint.positions.items())})
        self._topic_id = self._describe_topic_id()
        self._producer = make_producer(s.bootstrap, **PRODUCER_OPTIONS)
        self._consumer = make_consumer(s.bootstrap, s.group, fetch_max_wait_ms=FETCH_WAIT_MS,
                                       max_poll_records=2000, client_id=f"featurizer-{s.group}")
        self._consumer.subscribe([s.topic_in], listener=_Rebalance(self))
        gc.collect()
        gc.freeze()  # long-lived objects out of the collector's way: shorter pauses between rows

    def _broker_topic_id(self) -> str | None:
        """The input topic's id as the broker says now (a kept admin client: a few ms)."""
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(bootstrap_servers=self.settings.bootstrap,
                                               bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
            described = self._admin.describe_topics([self.settings.topic_in])
        except KafkaError:
            close_quietly([self._admin])
            self._admin = None
            raise
        raw_id = described[0].get("topic_id") if described else None
        if raw_id is None or not (described[0].get("partitions") or []):
            return self._describe_topic_id()  # missing (a restarted broker): create it, then describe
        return str(raw_id)

    def _describe_topic_id(self) -> str | None:
        infos = ensure_topics(self.settings.bootstrap, self.settings.topics)
        info = infos.get(self.settings.topic_in)
        return str(info.topic_id) if info is not None and info.topic_id is not None else None

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> Stats:
        assert self._consumer is not None
        s = self.settings
        last_flush = last_records = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = self._consumer.poll(timeout_ms=s.poll_ms)
                if batch:
                    if self._input_recreated(batch, after_pause=time.monotonic() - last_records > QUIET_CHECK_S):
                        continue  # these records may come from a new topic at the old offsets: read it again
                    for records in batch.values():
                        for message in records:
                            self._process(message)
                    last_records = time.monotonic()
                if len(self._rows) >= s.flush_rows or time.monotonic() - last_flush >= s.flush_s:
                    self.flush()
                    last_flush = time.monotonic()
                elif batch:
                    self._commit_written()
                self._writer.raise_failure()
            self.flush(wait=True)
        finally:
            self.close()
        return self.stats

    def _process(self, message: Any) -> None:
        value = message.value if message.value is not None else b""
        rows, rejections = self.pipeline.process(value)
        stats = self.stats
        stats.records += 1
        producer = self._producer
        assert producer is not None
        if rows:
            stamp = received_at(value)
            for row in rows:
                record = dict(zip(self.columns, row))
                if stamp is not None:
                    record["received_at"] = stamp
                key = row[0].encode()
                payload = orjson.dumps(record)
                self._send(self.settings.topic_out, key, payload)
                self._rows.append(row)
            stats.rows += len(rows)
        for rejection in rejections:
            stats.dlq += 1
            if self._logged_rejections < MAX_LOGGED_REJECTIONS:
                self._logged_rejections += 1
                log.warning("rejected %s[%d]@%d: %s (%s)", message.topic, message.partition, message.offset,
                            rejection.reason, rejection.detail[:200])
            self._send(self.settings.topic_dlq, message.key or b"", dlq_record(
                rejection.reason, rejection.detail, value, "featurizer", time.time_ns(),
                topic=message.topic, partition=message.partition, offset=message.offset,
                key=(message.key or b"").decode("utf-8", "replace")))
        self.positions[message.partition] = Position(message.offset + 1, self._topic_id)
        self._dirty = True

    def _send(self, topic: str, key: bytes, value: bytes) -> None:
        future = None
        producer = self._producer
        if producer is not None:
            try:
                partitioner = self._partition_of.get(topic)
                if partitioner is None or partitioner.producer is not producer:
                    partitioner = self._partition_of[topic] = KeyPartitioner(producer, topic)
                future = producer.send(topic, key=key, value=value, partition=partitioner(key))
            except KafkaError as exc:  # metadata unavailable; flush() sends it again
                log.warning("send to %s failed: %s", topic, exc)
        self._sent.append((topic, key, value, future))

    # -- flush: outputs, checkpoint, commit ---------------------------------------------

    def flush(self, wait: bool = False, commit: bool = True) -> bool:
        """Make everything processed so far durable; False when the broker never acknowledged.

        The files are written by the writer thread (they take tens of milliseconds, which
        would otherwise delay the rows behind them); the offsets are committed once it is
        done. ``wait`` blocks until then (shutdown, rebalance).
        """
        if self._dirty:
            if not self._deliver():
                self.clean = False
                return False
            s = self.settings
            part = None
            if self._rows:
                part = s.out_dir / f"part-{self.next_part:08d}.parquet"
                self.next_part += 1
                self.stats.parts += 1
            positions = dict(self.positions)
            checkpoint = pickle.dumps(Checkpoint(self.spec, s.topic_in, positions, self.pipeline.states,
                                                 self.pipeline.summary, self.next_part),
                                      protocol=pickle.HIGHEST_PROTOCOL)  # a snapshot: the state moves on
            self._writer.submit(part, self._rows, checkpoint, positions)
            if self._logged_rejections >= MAX_LOGGED_REJECTIONS:
                log.warning("%d rejections in all so far (see %s)", self.stats.dlq, s.topic_dlq)
            self._logged_rejections = 0
            self._rows = []
            self._sent.clear()
            self._dirty = False
            for partitioner in self._partition_of.values():
                partitioner.reset()  # the topics may have been recreated with other partition counts
            self.stats.flushes += 1
        if wait:
            self._writer.wait()
        if commit:
            self._commit_written()
        return True

    def _commit_written(self) -> None:
        """Commit the offsets of every flush the writer has finished (consumer thread only)."""
        written = self._writer.take_written()
        if written is not None:
            self.flushed = written
            self._commit()

    def _deliver(self, retry_max_s: float = 15.0) -> bool:
        """Wait until every record sent since the last flush is acknowledged, resending on failure.

        Gives up only when asked to stop: the unacknowledged rows are then recomputed from the
        last checkpoint on the next start.
        """
        delay = 0.5
        while True:
            if self._producer is not None:
                try:
                    self._producer.flush(timeout=30.0)
                except KafkaError as exc:
                    log.warning("flush failed: %s", exc)
            failed = [i for i, (*_, future) in enumerate(self._sent)
                      if future is None or not future.is_done or future.failed()]
            if not failed:
                return True
            if self._stop.is_set():
                log.error("stopping with %d records not acknowledged; the next start recomputes them "
                          "from the last checkpoint", len(failed))
                return False
            log.warning("%d records not acknowledged by %s; retrying in %.1f s",
                        len(failed), self.settings.bootstrap, delay)
            close_quietly([self._producer])
            self._producer = None
            self._stop.wait(delay)
            delay = min(delay * 2, retry_max_s)
            try:
                self._describe_topic_id()  # topics first: a restarted broker has none
                self._producer = make_producer(self.settings.bootstrap, **PRODUCER_OPTIONS)
            except (BrokerUnavailable, KafkaError) as exc:
                log.warning("%s", exc)
                continue
            for i in failed:  # in order; the first attempt may still arrive (at least once)
                topic, key, value, _ = self._sent[i]
                try:
                    future = self._producer.send(topic, key=key, value=value)
                except KafkaError as exc:
                    log.warning("send to %s failed: %s", topic, exc)
                    future = None
                self._sent[i] = (topic, key, value, future)

    def _commit(self) -> None:
        """Offsets to the group, for lag monitoring and for a start without checkpoint."""
        if self._consumer is None or not self.flushed:
            return
        topic = self.settings.topic_in
        assigned = {tp.partition for tp in self._consumer.assignment()}
        offsets = {TopicPartition(topic, p): OffsetAndMetadata(pos.offset, "", -1)
                   for p, pos in self.flushed.items() if p in assigned}
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:  # rebalancing or broker gone: the checkpoint still holds them
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%s); the checkpoint keeps the position", exc)

    # -- partitions ---------------------------------------------------------------------

    def on_assigned(self, partitions: list[TopicPartition]) -> None:
        """Seek each partition to where our state is; a recreated topic is read from its start."""
        assert self._consumer is not None
        try:
            self._topic_id = self._describe_topic_id()
        except (BrokerUnavailable, KafkaError) as exc:
            log.warning("cannot describe %s (%s); trusting the known positions", self.settings.topic_in, exc)
        for tp in partitions:
            known = self.positions.get(tp.partition)
            if known is None:
                log.info("%s[%d]: no records of it processed yet; starting at the committed offset (or the earliest)",
                         tp.topic, tp.partition)
                continue
            if known.topic_id is not None and self._topic_id is not None and known.topic_id != self._topic_id:
                self.stats.topic_resets += 1
                log.warning("%s was recreated (id %s, was %s; a restarted in-memory broker?): reading "
                            "partition %d from its start", tp.topic, self._topic_id, known.topic_id, tp.partition)
                self.positions[tp.partition] = Position(0, self._topic_id)
                self._consumer.seek(tp, 0)
            else:
                self._consumer.seek(tp, known.offset)
        log.info("assigned %s", sorted(tp.partition for tp in partitions))

    def _input_recreated(self, batch: dict, after_pause: bool) -> bool:
        """True (after seeking) when ``batch`` must not be processed because the input topic changed.

        A broker restarted with empty storage serves a new, shorter log under the same name;
        a consumer that goes on at its old offsets would skip records. The topic id tells: it
        comes from the consumer's metadata (cheap, but refreshed late after a restart) and, for
        the first batch after a pause (a restart always makes one), from the broker itself.
        """
        assert self._consumer is not None
        topic = self.settings.topic_in
        cluster = getattr(self._consumer, "_cluster", None)  # kafka-python keeps topic ids there
        seen = cluster.topic_id(topic) if cluster is not None else None
        seen = str(seen) if seen is not None else None
        changed = seen != self._metadata_topic_id
        self._metadata_topic_id = seen
        if not (after_pause or changed or self._topic_id is None):
            return False
        self.stats.topic_checks += 1
        try:
            current = self._broker_topic_id()  # the broker's answer is the one that counts
        except (BrokerUnavailable, KafkaError) as exc:
            log.warning("cannot check %s (%s); fetching these records again", topic, exc)
            self._rewind(batch)
            return True
        if current is None or self._topic_id is None or current == self._topic_id:
            self._topic_id = self._topic_id or current
            return False
        self.stats.topic_resets += 1
        log.warning("%s was recreated (id %s, was %s; a restarted in-memory broker?): reading it from the start",
                    topic, current, self._topic_id)
        self._topic_id = current
        for tp in self._consumer.assignment():
            self._consumer.seek(tp, 0)
            self.positions[tp.partition] = Position(0, self._topic_id)
        return True

    def _rewind(self, batch: dict) -> None:
        """Seek the batch's partitions back so that its records are fetched again."""
        assert self._consumer is not None
        for tp, records in batch.items():
            known = self.positions.get(tp.partition)
            self._consumer.seek(tp, known.offset if known is not None else records[0].offset)

    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        """Make the work done so far durable before the partitions go (the commit follows later:
        kafka-python runs this in its I/O thread, where a blocking commit is refused)."""
        if partitions:
            self.flush(wait=True, commit=False)

    def close(self) -> None:
        self._writer.stop()
        close_quietly([self._consumer, self._producer, self._admin])
        self._consumer = self._producer = self._admin = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class _Writer:
    """Writes Parquet parts and checkpoints in order, in a thread of its own.

    Each job is one flush: the part first, then the checkpoint that counts it, so a crash
    between the two rewrites the same part from the previous checkpoint.
    """

    def __init__(self, spec: FeatureSpec, checkpoint_path: Path) -> None:
        self.spec = spec
        self.checkpoint_path = checkpoint_path
        self._jobs: queue.Queue = queue.Queue(maxsize=4)  # backpressure when the disk is slow
        self._lock = threading.Lock()
        self._written: dict[int, Position] | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="featurizer-writer", daemon=True)
        self._thread.start()

    def submit(self, part: Path | None, rows: list, checkpoint: bytes, positions: dict[int, Position]) -> None:
        self.raise_failure()
        self._jobs.put((part, rows, checkpoint, positions))

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                part, rows, checkpoint, positions = job
                if self._failure is None:
                    self._write(part, rows, checkpoint)
                    with self._lock:
                        self._written = positions
            except (OSError, pickle.PickleError, ValueError) as exc:
                log.error("cannot write %s: %s", self.checkpoint_path.parent, exc)
                self._failure = exc
            finally:
                self._jobs.task_done()

    def _write(self, part: Path | None, rows: list, checkpoint: bytes) -> None:
        if part is not None:
            builder = TableBuilder(self.spec)
            builder.extend(rows)
            write_parquet(builder.to_pandas(), part)
        save_checkpoint(self.checkpoint_path, checkpoint)

    def take_written(self) -> dict[int, Position] | None:
        """Positions of the latest finished flush since the last call (None: nothing new)."""
        with self._lock:
            written, self._written = self._written, None
        return written

    def wait(self) -> None:
        self._jobs.join()
        self.raise_failure()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise FeaturizerError(f"cannot write to {self.checkpoint_path.parent} ({self._failure}): "
                                  "free space or fix permissions, then restart")

    def stop(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(60)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, featurizer: Featurizer) -> None:
        self.featurizer = featurizer

    def on_partitions_revoked(self, revoked):
        self.featurizer.on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned):
        self.featurizer.on_assigned(list(assigned))

