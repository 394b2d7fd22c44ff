"""Fixtures shared by the integration suites: real local brokers and script subprocesses.

Every service is started on a free loopback port and stopped at teardown. ``broker`` is Apache
Kafka (KRaft, durable data directory): the reference for every streaming and fault test.
``tansu_broker`` is the zero-setup demo broker, kept for a smoke test of the demo path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming.apache_kafka import ApacheKafka, fetch_jars
from streaming.broker import BrokerError, TansuBroker, broker_binary
from testkit import Proc, free_port


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """Apache Kafka's jars, fetched with Maven once per machine (the first run takes a few seconds)."""
    return fetch_jars()


@pytest.fixture
def broker(kafka_jars, tmp_path: Path):
    """Apache Kafka on a free port; ``stop()``/``kill()`` then ``start()`` keep the port and the data."""
    local = ApacheKafka(free_port(), tmp_path / "kafka")
    local.start()
    yield local
    local.stop()


@pytest.fixture
def tansu_broker(tmp_path: Path):
    """The demo's in-memory broker; skipped where its binary has no build for this platform."""
    try:
        broker_binary()
    except BrokerError as exc:
        pytest.skip(f"the Tansu broker is not available here: {exc}")
    local = TansuBroker(free_port(), log_path=tmp_path / "tansu.log")
    local.start()
    yield local
    local.stop()


@pytest.fixture
def spawn(tmp_path: Path):
    """Factory: ``spawn(name, [script, args...])`` runs a script; all are killed at teardown."""
    procs: list[Proc] = []

    def start(name: str, args: list[str]) -> Proc:
        proc = Proc(args, tmp_path, name)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait(10)
