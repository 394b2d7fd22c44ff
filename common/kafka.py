"""Kafka plumbing shared by the ingestor, the featurizer and the checks.

Factories set the options this project depends on, in one place:
  * producers: acks=all and idempotent wherever the broker supports it (kafka-python's default,
    which it turns off for brokers older than 0.11): retries neither repeat nor reorder records;
  * consumers: manual commits and the session/heartbeat timeouts that let a group join in
    seconds rather than half a minute.
Topics are never auto-created: ``ensure_topics`` creates them with their partition counts before
anyone produces (kafka-python does not pass ``allow_auto_create_topics=False`` on to the broker,
so the code never relies on it). ``stop_producer`` really stops a producer: kafka-python's
``close(timeout=0)`` raises while batches are pending and leaves the producer sending.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.partitioner.default import murmur2

from common.config import KafkaConfig
from common.times import format_time_ns

log = logging.getLogger(__name__)

BOOTSTRAP_TIMEOUT_MS = 5000  # a client that cannot reach any broker gives up after this long

CONSUMER_DEFAULTS: dict[str, Any] = {
    "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 2000,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
}
PRODUCER_DEFAULTS: dict[str, Any] = {
    "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
    "acks": "all",
    "max_in_flight_requests_per_connection": 5,  # the most idempotence keeps in order
    "linger_ms": 0,  # records batch up behind the requests in flight under load anyway
    "retries": 2_147_483_647,
    "request_timeout_ms": 3000,
    "delivery_timeout_ms": 5000,  # a record not acknowledged by then fails: the caller spools or retries
    "max_block_ms": 3000,  # send() waits this long at most for metadata of a missing topic
    "reconnect_backoff_max_ms": 1000,
}
DLQ_PARTITIONS = 1
MAX_RECORD_BYTES = 1_000_000  # a bigger record would be refused (broker and producer limits are 1 MiB)
DLQ_ORIGINAL_BYTES = 16_384  # a DLQ record keeps at most this much of the original (and its size)


class BrokerUnavailable(ConnectionError):
    """No Kafka broker answers at the configured address; the message says what to do."""


def unavailable_message(bootstrap: str) -> str:
    """The one error text for an absent broker, naming the variable and the fix."""
    unset = "" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else "KAFKA_BOOTSTRAP_SERVERS is not set and "
    return f"{unset}no broker answers at {bootstrap}: start one with `make kafka`"


def broker_answers(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """True when a TCP connection to one of the bootstrap addresses succeeds (cheap pre-check)."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def _require_broker(bootstrap: str) -> None:
    """Fail in a second, not after the client's bootstrap timeout, when nothing listens."""
    if not broker_answers(bootstrap):
        raise BrokerUnavailable(unavailable_message(bootstrap))


def make_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """A producer with the project's delivery settings; BrokerUnavailable when none answers."""
    options = {**PRODUCER_DEFAULTS, **overrides}
    _require_broker(bootstrap)
    try:
        return KafkaProducer(bootstrap_servers=bootstrap, **options)
    except KafkaTimeoutError as exc:
        raise BrokerUnavailable(unavailable_message(bootstrap)) from exc


def make_consumer(bootstrap: str, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer with manual commits and fast group joins; BrokerUnavailable when none answers."""
    options = {**CONSUMER_DEFAULTS, **overrides}
    if group_id is None:
        options.pop("session_timeout_ms")
        options.pop("heartbeat_interval_ms")
    _require_broker(bootstrap)
    try:
        return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, **options)
    except KafkaTimeoutError as exc:
        raise BrokerUnavailable(unavailable_message(bootstrap)) from exc


def key_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partition for ``key`` among ``partitions`` (murmur2, as every client)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitioner:
    """The partition Kafka's default partitioner picks for a key, computed once per key.

    kafka-python hashes the key on every send, which costs more than the rest of send();
    a feature stream has a handful of keys, so the answer is cached until ``reset()``
    (call it when the topic may have changed, e.g. at every flush).
    """

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._cache: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        partition = self._cache.get(key)
        if partition is None:
            partitions = sorted(self.producer.partitions_for(self.topic) or ())
            if not partitions:
                raise KafkaTimeoutError(f"no partitions known for {self.topic}")
            partition = partitions[key_partition(key, len(partitions))]
            self._cache[key] = partition
        return partition

    def reset(self) -> None:
        self._cache.clear()


def topic_partitions(kafka: KafkaConfig) -> dict[str, int]:
    """The project's three topics and their partition counts (the DLQ needs no parallelism)."""
    return {
        kafka.topic_raw: kafka.partitions,
        kafka.topic_features: kafka.partitions,
        kafka.topic_dlq: DLQ_PARTITIONS,
    }


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    topic_id: uuid.UUID | None  # changes when a topic is deleted and created again


def ensure_topics(bootstrap: str, wanted: dict[str, int], timeout_s: float = 10.0) -> dict[str, TopicInfo]:
    """Create the topics that are missing, with their partition counts, and describe them all.

    Called before producing, at every (re)connection: the broker never creates a topic on its
    own here, and an in-memory demo broker loses its topics on restart. An existing topic with
    another partition count is kept and logged.
    """
    if not wanted:
        return {}
    _require_broker(bootstrap)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=round(timeout_s * 1000),
                                 bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except KafkaTimeoutError as exc:
        raise BrokerUnavailable(unavailable_message(bootstrap)) from exc
    try:
        existing = set(admin.list_topics())
        missing = {name: n for name, n in wanted.items() if name not in existing}
        if missing:
            response = admin.create_topics(
                {name: {"num_partitions": n, "replication_factor": 1} for name, n in missing.items()},
                raise_errors=False,
            )
            for topic in _response_topics(response):
                code = topic.get("error_code", 0)
                if code == 0:
                    log.info("created topic %s with %d partitions", topic["name"], missing[topic["name"]])
                elif code != 36:  # 36: created meanwhile by another client
                    raise KafkaError(f"cannot create topic {topic['name']}: {topic.get('error_message')}")
        described = admin.describe_topics(list(wanted))
    except KafkaError as exc:
        raise BrokerUnavailable(f"{unavailable_message(bootstrap)} ({exc})") from exc
    finally:
        admin.close()
    infos: dict[str, TopicInfo] = {}
    for topic in described:
        name = topic["name"]
        count = len(topic.get("partitions") or [])
        raw_id = topic.get("topic_id")
        topic_id = raw_id if isinstance(raw_id, uuid.UUID) else _uuid_or_none(raw_id)
        if count != wanted.get(name, count):
            log.warning("topic %s has %d partitions, the config says %d; keeping it as it is",
                        name, count, wanted[name])
        infos[name] = TopicInfo(name, count, topic_id)
    return infos


def _response_topics(response: Any) -> list[dict]:
    if isinstance(response, dict):
        return list(response.get("topics", []))
    return [t if isinstance(t, dict) else vars(t) for t in getattr(response, "topics", [])]


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        parsed = uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None
    return None if parsed.int == 0 else parsed


def dlq_record(reason: str, detail: str, original: bytes, source: str, received_ns: int,
               **context: Any) -> bytes:
    """The DLQ record: why, where from, the original's size and its bytes (base64).

    The original is kept exactly up to ``DLQ_ORIGINAL_BYTES``; beyond that its prefix, with
    ``original_truncated``, so that a DLQ record always fits in Kafka. ``context`` adds what
    locates the original (topic, partition, offset, key).
    """
    kept = original[:DLQ_ORIGINAL_BYTES]
    record = {
        "reason": reason,
        "detail": detail[:1000],
        "source": source,
        "received_at": format_time_ns(received_ns),
        **context,
        "original_size": len(original),
        "original_truncated": len(kept) < len(original),
        "original_b64": base64.b64encode(kept).decode(),
    }
    return orjson.dumps(record)


def stop_producer(producer: KafkaProducer, timeout_s: float = 10.0) -> None:
    """Stop ``producer`` for real, dropping what it has not sent: when this returns, its I/O
    thread has ended and its connections are closed, so it can write nothing more.

    Its pending futures fail ("Producer is closed forcefully"); the caller keeps those records
    (the ingestor's journal) and sends them again with a new producer.
    """
    sender = producer._sender  # kafka-python offers no public forced close
    sender.force_close()
    sender.join(timeout_s)
    if sender.is_alive():
        raise RuntimeError(f"the Kafka producer's I/O thread did not stop within {timeout_s:.0f} s")
    producer.close(timeout=0)  # nothing pending any more: releases metrics and serializers


def close_quietly(clients: Iterable[Any]) -> None:
    """Close Kafka clients at shutdown without waiting on a broker that may be gone (producers
    are stopped for real: whatever they still hold is dropped, so flush first what matters)."""
    for client in clients:
        if client is None:
            continue
        try:
            stop_producer(client) if isinstance(client, KafkaProducer) else client.close()
        except (KafkaError, OSError, RuntimeError) as exc:
            log.warning("closing %s: %s", type(client).__name__, exc)


class _OncePerInterval(logging.Filter):
    """Let a repeated client message through once per interval (an outage logs it 10 times a second)."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage()[:50])
        now = time.monotonic()
        if now - self._last.get(key, -self.interval_s) < self.interval_s:
            return False
        self._last[key] = now
        return True


def tame_client_logs(verbose: bool, interval_s: float = 30.0) -> None:
    """kafka-python logs every connection at INFO and every failed retry at ERROR: keep warnings
    and errors, each distinct one at most once per ``interval_s`` (all of them with -v)."""
    if verbose:
        return
    client = logging.getLogger("kafka")
    client.setLevel(logging.WARNING)
    once = _OncePerInterval(interval_s)
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: not record.name.startswith("kafka.") or once.filter(record))
