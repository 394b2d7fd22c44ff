"""A Kafka producer in a child process, so that encoding records runs on another core.

kafka-python builds record batches in pure Python: ``send()`` costs about as much as computing
a feature row, and both hold the same interpreter lock. The featurizer hands its rows to this
child in chunks over a pipe and asks it to flush at every checkpoint; the child sends them in
order (one idempotent producer at a time, replaced when it stops delivering), retries on its own
until the broker acknowledges everything, and answers. If the child dies, the featurizer starts another and sends the unacknowledged
records again (at least once, in order).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from kafka.errors import KafkaError

from common.kafka import BrokerUnavailable, KeyPartitioner, close_quietly, ensure_topics, make_producer

log = logging.getLogger(__name__)
ATTEMPT_S = 10.0  # a producer that delivers nothing pending in this long is replaced

Record = tuple[str, bytes, bytes]  # topic, key, value


class ProducerGone(RuntimeError):
    """The child process died; the caller starts another and sends again."""


class ProducerProcess:
    """``send`` chunks of records, ``flush`` to learn that the broker has all of them."""

    def __init__(self, bootstrap: str, topics: dict[str, int], options: dict[str, Any]) -> None:
        context = multiprocessing.get_context("spawn")  # no inherited locks or sockets, same on every OS
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_conn, bootstrap, topics, options),
                                        name="featurizer-producer", daemon=True)
        self._process.start()
        child_conn.close()

    def send(self, records: list[Record]) -> None:
        try:
            self._conn.send(("send", records))
        except (BrokenPipeError, EOFError, OSError) as exc:
            raise ProducerGone(f"the producer process is gone ({exc})") from exc

    def flush(self, timeout_s: float) -> bool:
        """True when every record sent so far is acknowledged; False when the broker did not
        take them within ``timeout_s`` (the child keeps them and keeps trying)."""
        try:
            self._conn.send(("flush", timeout_s))
            while not self._conn.poll(1.0):
                if not self._process.is_alive():
                    raise ProducerGone(f"the producer process exited with code {self._process.exitcode}")
            return bool(self._conn.recv())
        except (BrokenPipeError, EOFError, OSError) as exc:
            raise ProducerGone(f"the producer process is gone ({exc})") from exc

    def close(self, timeout_s: float = 10.0) -> None:
        try:
            self._conn.send(("close", None))
        except (BrokenPipeError, EOFError, OSError):
            pass
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()


def _serve(conn: Connection, bootstrap: str, topics: dict[str, int], options: dict[str, Any]) -> None:
    """The child: send what arrives, answer flushes, until told to close or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the featurizer decides when to stop
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sender = _Sender(bootstrap, topics, options)
    try:
        while True:
            try:
                command, argument = conn.recv()
            except EOFError:
                return  # the featurizer died: nothing to answer to
            if command == "send":
                sender.send(argument)
            elif command == "flush":
                conn.send(sender.flush(argument))
            else:
                return
    finally:
        sender.close()


class _Sender:
    """Sends in order and keeps every record until a flush saw it acknowledged."""

    def __init__(self, bootstrap: str, topics: dict[str, int], options: dict[str, Any]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.options = options
        self.pending: list[tuple[Record, Any]] = []  # (record, future or None) since the last good flush
        self.producer = None
        self.partitioners: dict[str, KeyPartitioner] = {}

    def _connect(self) -> bool:
        try:
            ensure_topics(self.bootstrap, self.topics)
            self.producer = make_producer(self.bootstrap, **self.options)
        except (BrokerUnavailable, KafkaError) as exc:
            log.warning("%s", exc)
            return False
        self.partitioners = {}
        return True

    def _send_one(self, record: Record) -> Any:
        if self.producer is None and not self._connect():
            return None
        topic, key, value = record
        try:
            partitioner = self.partitioners.get(topic)
            if partitioner is None:
                partitioner = self.partitioners[topic] = KeyPartitioner(self.producer, topic)
            return self.producer.send(topic, key=key, value=value, partition=partitioner(key))
        except KafkaError as exc:  # metadata unavailable: flush() sends it again
            log.warning("send to %s failed: %s", topic, exc)
            return None

    def send(self, records: list[Record]) -> None:
        if self.producer is None and self.pending:  # after a failed flush: behind the records it resends
            self.pending.extend((record, None) for record in records)
            return
        for record in records:
            self.pending.append((record, self._send_one(record)))

    def flush(self, timeout_s: float) -> bool:
        """Wait for every pending record, resending the failed ones in order, until ``timeout_s``.

        A producer that has not delivered within ``ATTEMPT_S`` is replaced, never waited on again:
        after its batches expired in an outage, kafka-python's idempotent producer can stay stuck
        with no producer id, although the broker is back.
        """
        deadline = time.monotonic() + timeout_s
        delay = 0.5
        while True:
            if self.producer is not None:
                try:
                    self.producer.flush(timeout=max(0.1, min(ATTEMPT_S, deadline - time.monotonic())))
                except KafkaError as exc:
                    log.warning("flush failed: %s", exc)
            failed = [i for i, (_, future) in enumerate(self.pending)
                      if future is None or not future.is_done or future.failed()]
            if not failed:
                self.pending.clear()
                return True
            close_quietly([self.producer])  # its pending futures fail; the records are kept here
            self.producer = None
            if time.monotonic() + delay > deadline:
                return False  # the next flush sends them again, with a new producer
            log.warning("%d records not acknowledged by %s; retrying in %.1f s", len(failed), self.bootstrap, delay)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)
            for i in failed:  # in order; the first attempt may still arrive (at least once)
                record = self.pending[i][0]
                self.pending[i] = (record, self._send_one(record))

    def close(self) -> None:
        close_quietly([self.producer])
        self.producer = None
