"""Probes of the broker behaviours the pipeline must not depend on, run the same way on any broker.

Each probe makes the same client calls against a Kafka-compatible broker (the zero-setup Tansu
demo broker, or Apache Kafka for comparison) and returns a ``Finding``: what happened, in
numbers. They exist to measure, on the broker at hand, what docs/streaming.md says about Tansu:
writes to a topic it does not have are acknowledged; creating the topic afterwards restarts the
partition's offsets while the stored batch stays; a reader at the tail can skip acknowledged
batches when two producers share a partition; a metadata request creates the topic with 4
partitions; a restart loses everything; a consumer group takes seconds to form. One more,
found on the way: the log end it reports is the first offset of the last batch, plus one.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, for_code
from kafka.protocol.producer import ProduceRequest
from kafka.record.memory_records import MemoryRecordsBuilder
from kafka.structs import OffsetAndMetadata

from common.kafka import ensure_topics, make_consumer, make_producer

log = logging.getLogger(__name__)


class Broker(Protocol):
    """What the probes need of a broker: its address, and a restart (TansuBroker, ApacheKafka)."""

    @property
    def bootstrap(self) -> str: ...

    def start(self) -> int: ...

    def stop(self) -> None: ...


@dataclass
class Finding:
    summary: str  # one table cell: what happened, with the numbers
    numbers: dict = field(default_factory=dict)


def _name(prefix: str) -> str:
    return f"probe-{prefix}-{uuid.uuid4().hex[:8]}"


def _admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)


def _reader(bootstrap: str) -> KafkaConsumer:
    return make_consumer(bootstrap, None, consumer_timeout_ms=2000, fetch_max_wait_ms=100)


def _read_partition(bootstrap: str, tp: TopicPartition) -> list[tuple[int, bytes]]:
    """(offset, value) of every record a reader gets from the start of the partition."""
    consumer = _reader(bootstrap)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning()
        return [(r.offset, r.value) for r in consumer]
    finally:
        consumer.close()


def _end_offset(bootstrap: str, tp: TopicPartition) -> int:
    consumer = _reader(bootstrap)
    try:
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


# -- 1 and 2: a write to a missing topic, then the topic created ----------------------------


def produce_without_metadata(bootstrap: str, topic: str, values: list[bytes]) -> tuple[int, int]:
    """Send one Produce request (acks=all) for partition 0 of ``topic``: (error code, base offset).

    A client library always asks for the topic's metadata before producing (and on Tansu that
    request creates the topic), so the probe builds the request itself, as a client with stale
    metadata would send it after the topic went away.
    """
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    now_ms = int(time.time() * 1000)
    for value in values:
        builder.append(now_ms, None, value)
    builder.close()
    topic_data = ProduceRequest.TopicProduceData
    request = ProduceRequest(
        transactional_id=None, acks=-1, timeout_ms=5000, min_version=3, max_version=9,
        topic_data=[topic_data(name=topic, partition_data=[
            topic_data.PartitionProduceData(index=0, records=builder.buffer())])])
    admin = _admin(bootstrap)
    try:
        async def send(req):
            return await admin._manager.send(req)  # kafka-python has no public raw-request call

        response = admin._manager.run(send, request)
    finally:
        admin.close()
    partition = response.responses[0].partition_responses[0]
    return partition.error_code, partition.base_offset


def write_to_missing_topic(bootstrap: str, topic: str, records: int = 10) -> Finding:
    values = [b"before-%d" % i for i in range(records)]
    code, base = produce_without_metadata(bootstrap, topic, values)
    admin = _admin(bootstrap)
    try:
        listed = topic in admin.list_topics()
    finally:
        admin.close()
    if code == 0:
        summary = (f"**acknowledged** {records} records (error 0, base offset {base}); "
                   f"the topic is {'listed' if listed else '**still not listed**'} afterwards")
    else:
        summary = (f"refused: {for_code(code).__name__} (error {code}); the topic is "
                   f"{'listed' if listed else 'not listed'} afterwards")
    return Finding(summary, {"error_code": code, "base_offset": base, "listed": listed, "records": records})


def create_after_write(bootstrap: str, topic: str, earlier: int, writes: int = 10) -> Finding:
    """Create ``topic`` (3 partitions) after ``earlier`` records were written to it, then write
    ``writes`` records one at a time to partition 0 and read the partition from the start."""
    ensure_topics(bootstrap, {topic: 3})
    tp = TopicPartition(topic, 0)
    end_after_create = _end_offset(bootstrap, tp)
    # Not idempotent: each write stands alone, so one refusal cannot poison the producer's later sends.
    producer = make_producer(bootstrap, delivery_timeout_ms=5000, request_timeout_ms=3000, enable_idempotence=False)
    accepted: list[int] = []
    errors: set[str] = set()
    try:
        for i in range(writes):
            future = producer.send(topic, value=b"after-%d" % i, partition=0)
            producer.flush(10)
            if future.succeeded():
                accepted.append(future.value.offset)
            else:
                errors.add(type(future.exception).__name__)
    finally:
        producer.close(timeout=5)
    stored = _read_partition(bootstrap, tp)
    old = [offset for offset, value in stored if value.startswith(b"before-")]
    new = [offset for offset, value in stored if value.startswith(b"after-")]
    offsets = [offset for offset, _ in stored]
    numbers = {"end_offset_after_create": end_after_create, "writes": writes, "accepted": len(accepted),
               "accepted_offsets": accepted, "errors": sorted(errors), "old_readable": len(old),
               "new_readable": len(new), "readable": len(stored), "distinct_offsets": len(set(offsets)),
               "earlier": earlier}
    refused = f"**{writes - len(accepted)} of {writes}** later writes refused ({', '.join(sorted(errors))})"
    if old:
        summary = (f"after the create the partition's end offset is **{end_after_create}** while the "
                   f"{len(old)} earlier records stay readable at offsets {min(old)}-{max(old)}; "
                   + (refused + "; " if len(accepted) < writes else "")
                   + (f"{len(accepted)} accepted at offsets {accepted[0]}-{accepted[-1]}: a reader from the start "
                      f"gets **{len(stored)} records at {len(set(offsets))} distinct offsets**" if accepted else ""))
    else:
        summary = (f"created empty (end offset {end_after_create}); {len(accepted)} of {writes} writes accepted"
                   + (f" at offsets {accepted[0]}-{accepted[-1]}" if accepted else "")
                   + ("; " + refused if len(accepted) < writes else ""))
    return Finding(summary, numbers)


# -- 3: a reader at the tail while two producers share a partition -------------------------------


def tail_reader_misses(bootstrap: str, tries: int = 10, producers: int = 2, records: int = 10_000,
                       pause_every: int = 3, quiet_s: float = 3.0) -> Finding:
    """Each try: a fresh one-partition topic, a reader at its end, ``producers`` producers each
    sending ``records`` records (a 1 ms pause every ``pause_every``, so requests interleave).
    A record is missed when it was acknowledged and stored but the tail reader never got it."""
    misses: list[int] = []
    acked_total = stored_total = 0
    for attempt in range(tries):
        topic = _name("tail")
        ensure_topics(bootstrap, {topic: 1})
        tp = TopicPartition(topic, 0)
        reader = make_consumer(bootstrap, None, fetch_max_wait_ms=10)
        reader.assign([tp])
        reader.seek_to_end()
        reader.position(tp)
        acked = [0] * producers
        threads = [threading.Thread(target=_produce_paced, args=(bootstrap, topic, i, records, pause_every, acked))
                   for i in range(producers)]
        for thread in threads:
            thread.start()
        seen: set[bytes] = set()
        last_new = time.monotonic()
        try:
            while any(t.is_alive() for t in threads) or time.monotonic() - last_new < quiet_s:
                batch = reader.poll(timeout_ms=50)
                for got in batch.values():
                    seen.update(r.value for r in got)
                if batch:
                    last_new = time.monotonic()
        finally:
            reader.close()
        stored = {value for _, value in _read_partition(bootstrap, tp)}
        missed = len(stored - seen)
        misses.append(missed)
        acked_total += sum(acked)
        stored_total += len(stored)
        log.info("tail reader, try %d: %d acknowledged, %d stored, %d read at the tail, %d missed",
                 attempt + 1, sum(acked), len(stored), len(seen & stored), missed)
    tries_with_miss = sum(1 for m in misses if m)
    summary = (f"missed **{sum(misses):,}** of {acked_total:,} acknowledged records "
               f"({tries_with_miss} of {tries} tries; per try: {', '.join(map(str, misses))}); "
               f"{stored_total:,} stored")
    return Finding(summary, {"misses": misses, "acked": acked_total, "stored": stored_total,
                             "producers": producers, "records_per_producer": records})


def _produce_paced(bootstrap: str, topic: str, index: int, records: int, pause_every: int, acked: list[int]) -> None:
    producer = make_producer(bootstrap, delivery_timeout_ms=60_000, request_timeout_ms=30_000)
    try:
        futures = []
        for i in range(records):
            futures.append(producer.send(topic, value=b"p%d-%d" % (index, i), partition=0))
            if i % pause_every == 0:
                time.sleep(0.001)
        producer.flush(60)
        acked[index] = sum(1 for f in futures if f.succeeded())
    finally:
        producer.close(timeout=5)


# -- 4: auto-creation -----------------------------------------------------------------------------


def auto_create(bootstrap: str, topic: str, wait_s: float = 3.0) -> Finding:
    """Send to a topic nobody created: kafka-python's metadata request allows auto-creation."""
    producer = make_producer(bootstrap, max_block_ms=round(wait_s * 1000))
    try:
        producer.send(topic, value=b"x").get(timeout=wait_s + 5)
        outcome = "the send succeeded"
    except KafkaError as exc:
        outcome = f"the send failed ({type(exc).__name__})"
    finally:
        producer.close(timeout=5)
    admin = _admin(bootstrap)
    try:
        described = admin.describe_topics([topic]) if topic in admin.list_topics() else []
    finally:
        admin.close()
    partitions = len(described[0].get("partitions") or []) if described else 0
    if partitions:
        summary = f"**created with {partitions} partitions** by the first metadata request; {outcome}"
    else:
        summary = f"not created; {outcome} after {wait_s:g} s"
    return Finding(summary, {"partitions": partitions, "outcome": outcome})


# -- 5: restart -----------------------------------------------------------------------------------


def restart_keeps(broker: Broker, records: int = 300, committed: int = 60) -> Finding:
    """Write records and commit an offset, restart the broker (SIGTERM, start), look again."""
    bootstrap = broker.bootstrap
    topic = _name("restart")
    group = _name("group")
    ensure_topics(bootstrap, {topic: 3})
    producer = make_producer(bootstrap)
    try:
        for i in range(records):
            producer.send(topic, key=b"k%d" % (i % 7), value=b"%d" % i)
        producer.flush(30)
    finally:
        producer.close(timeout=5)
    tp = TopicPartition(topic, 0)
    _commit(bootstrap, group, tp, committed)
    broker.stop()
    broker.start()
    admin = _admin(bootstrap)
    try:
        listed = topic in admin.list_topics()
    finally:
        admin.close()
    readable = sum(len(_read_partition(bootstrap, TopicPartition(topic, p))) for p in range(3)) if listed else 0
    consumer = make_consumer(bootstrap, group)
    try:
        kept_offset = consumer.committed(tp) if listed else None
    finally:
        consumer.close()
    if readable == records and kept_offset == committed:
        summary = f"kept the topic, all {records} records and the committed offset"
    else:
        summary = (f"**topic {'kept' if listed else 'gone'}, {readable} of {records} records, committed offset "
                   f"{kept_offset if kept_offset is not None else 'gone'}** (was {committed})")
    return Finding(summary, {"listed": listed, "readable": readable, "records": records,
                             "committed_after": kept_offset, "committed_before": committed})


def _commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    consumer = make_consumer(bootstrap, group)
    try:
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close()


# -- 6: consumer group join time ----------------------------------------------------------------------


def group_join_time(bootstrap: str, tries: int = 5, timeout_s: float = 60.0) -> Finding:
    """Seconds from subscribe() to the first assignment of a lone consumer in a fresh group, with
    the project's consumer settings (session 6 s, heartbeat 2 s)."""
    topic = _name("join")
    ensure_topics(bootstrap, {topic: 3})
    times: list[float] = []
    for _ in range(tries):
        consumer = make_consumer(bootstrap, _name("group"))
        try:
            started = time.monotonic()
            consumer.subscribe([topic])
            while not consumer.assignment():
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"no assignment within {timeout_s:.0f} s on {bootstrap}")
                consumer.poll(timeout_ms=50)
            times.append(time.monotonic() - started)
        finally:
            consumer.close()
    summary = (f"median **{statistics.median(times):.2f} s**, at most {max(times):.2f} s "
               f"({tries} fresh groups, session 6 s, heartbeat 2 s)")
    return Finding(summary, {"seconds": times})


# -- found on the way: the log end it reports ---------------------------------------------------------


def reported_end(bootstrap: str, batches: int = 3, per_batch: int = 10) -> Finding:
    """Write ``batches`` batches of ``per_batch`` records and ask for the log end (ListOffsets latest)."""
    topic = _name("end")
    ensure_topics(bootstrap, {topic: 1})
    producer = make_producer(bootstrap, linger_ms=1000)  # each flush() sends exactly one batch
    try:
        for b in range(batches):
            for i in range(per_batch):
                producer.send(topic, value=b"%d-%d" % (b, i), partition=0)
            producer.flush(10)
    finally:
        producer.close(timeout=5)
    tp = TopicPartition(topic, 0)
    end = _end_offset(bootstrap, tp)
    stored = len(_read_partition(bootstrap, tp))
    total = batches * per_batch
    if end == stored == total:
        summary = f"{end} for {total} records in {batches} batches"
    else:
        summary = (f"**{end}** for {stored} stored records in {batches} batches of {per_batch}: a reader that "
                   f"seeks to the end reads {stored - end} old records again, and lag is under-reported")
    return Finding(summary, {"end": end, "stored": stored, "written": total})


# -- all of them ----------------------------------------------------------------------------------------


def probe_all(broker: Broker, tail_tries: int = 10, tail_producers: tuple[int, ...] = (2, 3),
              join_tries: int = 5) -> dict[str, Finding]:
    """Every probe on one running broker, in an order that leaves the restart for last; the tail
    reader's findings are named ``tail_reader_<producers>``."""
    bootstrap = broker.bootstrap
    findings: dict[str, Finding] = {}
    missing = _name("missing")
    findings["missing_topic"] = write_to_missing_topic(bootstrap, missing)
    findings["create_after_write"] = create_after_write(bootstrap, missing, findings["missing_topic"].numbers["records"])
    for producers in tail_producers:
        findings[f"tail_reader_{producers}"] = tail_reader_misses(bootstrap, tries=tail_tries, producers=producers)
    findings["auto_create"] = auto_create(bootstrap, _name("auto"))
    findings["reported_end"] = reported_end(bootstrap)
    findings["group_join"] = group_join_time(bootstrap, tries=join_tries)
    findings["restart"] = restart_keeps(broker)
    for name, finding in findings.items():
        log.info("%s: %s", name, finding.summary)
    return findings
