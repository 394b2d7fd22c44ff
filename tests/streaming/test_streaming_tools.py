"""The helper CLIs: the local broker manager, the consume check, and the Docker Compose file."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from common.kafka import ensure_topics, make_producer
from features.ticks import raw_record
from streaming_helpers import REPO_ROOT, consume_values, free_port

pytestmark = pytest.mark.integration


def test_local_kafka_starts_creates_topics_and_stops(spawn, tmp_path, tansu_broker):
    """The default engine (Tansu); the fixture only proves the binary runs here (skips where it cannot)."""
    port = free_port()
    common = ["--port", str(port), "--run-dir", str(tmp_path / "run")]
    start = spawn("start", ["scripts/local_kafka.py", "start", *common])
    try:
        assert start.wait(60) == 0, start.stderr()
        described = ensure_topics(f"127.0.0.1:{port}", {"ticks.raw": 3, "ticks.features": 3, "ticks.dlq": 1})
        assert {t.name: t.partitions for t in described.values()} == {
            "ticks.raw": 3, "ticks.features": 3, "ticks.dlq": 1}
        assert "ticks.raw (3 partitions)" in start.stdout()
        assert spawn("status", ["scripts/local_kafka.py", "status", *common]).wait(30) == 0
    finally:
        stop = spawn("stop", ["scripts/local_kafka.py", "stop", *common])
        assert stop.wait(30) == 0
    assert spawn("status2", ["scripts/local_kafka.py", "status", *common]).wait(30) == 3


def test_local_apache_kafka_keeps_its_data_across_a_restart(spawn, tmp_path, kafka_jars):
    port = free_port()
    common = ["--port", str(port), "--run-dir", str(tmp_path / "run")]
    start = spawn("start", ["scripts/local_kafka.py", "start", "--engine", "apache", *common])
    try:
        assert start.wait(120) == 0, start.stderr()
        assert "kept across restarts" in start.stdout()
        bootstrap = f"127.0.0.1:{port}"
        _produce(bootstrap, "ticks.raw", [b'{"n": %d}' % i for i in range(3)])
        assert spawn("stop", ["scripts/local_kafka.py", "stop", *common]).wait(60) == 0
        again = spawn("again", ["scripts/local_kafka.py", "start", "--engine", "apache", *common])
        assert again.wait(120) == 0, again.stderr()
        assert len(consume_values(bootstrap, "ticks.raw", 3, timeout_s=20)) == 3
    finally:
        assert spawn("down", ["scripts/local_kafka.py", "stop", *common]).wait(60) == 0


def _produce(bootstrap: str, topic: str, values: list[bytes], key: bytes = b"BTC-USD") -> None:
    ensure_topics(bootstrap, {topic: 1})
    producer = make_producer(bootstrap)
    for value in values:
        producer.send(topic, key=key, value=value)
    producer.flush(10)
    producer.close()


FRAME = ('{"channel":"ticker","timestamp":"2026-04-05T22:35:14.009945409Z","sequence_num":2,"events":[{"type":'
         '"update","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"1","best_bid":"1","best_ask":"2"}]}]}')


def test_consume_check_passes_on_valid_raw_records(broker, spawn):
    _produce(broker.bootstrap, "ticks.raw", [raw_record(FRAME, 1_775_000_000_000_000_000 + i) for i in range(5)])
    check = spawn("check", ["scripts/kafka_consume_check.py", "--topic", "ticks.raw", "--min", "5",
                            "--timeout", "20", "--bootstrap", broker.bootstrap])
    assert check.wait(60) == 0, check.stderr()
    report = check.last_json()
    assert report["valid"] == 5 and report["per_key"] == {"BTC-USD": 5}


@pytest.mark.parametrize("values, wanted, message", [
    ([b"not json"], 1, "1 malformed records in ticks.raw; first at partition 0 offset 0"),
    ([raw_record(FRAME, 1_775_000_000_000_000_000)], 3, "only 1 valid records in ticks.raw"),
    (None, 1, "topic ticks.raw does not exist"),
])
def test_consume_check_fails_with_one_clear_line(broker, spawn, values, wanted, message):
    if values is not None:
        _produce(broker.bootstrap, "ticks.raw", values)
    check = spawn("check", ["scripts/kafka_consume_check.py", "--topic", "ticks.raw", "--min", str(wanted),
                            "--timeout", "3", "--bootstrap", broker.bootstrap])
    assert check.wait(60) == 1
    lines = [line for line in check.stderr().splitlines() if line.startswith("kafka_consume_check:")]
    assert len(lines) == 1 and message in lines[0], check.stderr()[-2000:]


def test_consume_check_without_broker_says_how_to_start_one(spawn):
    check = spawn("check", ["scripts/kafka_consume_check.py", "--topic", "ticks.raw",
                            "--bootstrap", f"127.0.0.1:{free_port()}"])
    assert check.wait(60) == 1
    assert "start one with `make kafka`" in check.stderr()


def test_featurizer_refuses_the_same_topic_twice(spawn):
    proc = spawn("fz", ["features/featurizer.py", "--topic_in", "ticks.raw", "--topic-out", "ticks.raw"])
    assert proc.wait(30) == 2
    assert "three different topics" in proc.stderr()


def test_compose_file_is_valid_for_docker_compose():
    """`docker-compose config` validates the file; `make test` installs Debian's docker-compose first."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is not installed: run `make compose-tool` (make test does)"
    result = subprocess.run([tool, "-f", "docker/compose.yaml", "config"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "GRAFANA_ADMIN_PASSWORD": "test"})  # required by the stack
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    live = {"kafka", "kafka-init", "mlflow", "ingestor", "featurizer"}
    assert live <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for name, service in services.items():  # nothing listens beyond this machine
        for port in service.get("ports", []):
            assert str(port.get("host_ip", port) if isinstance(port, dict) else port).startswith("127.0.0.1"), name
    for name in live - {"kafka-init"}:
        assert "healthcheck" in services[name] and services[name]["restart"] == "unless-stopped", name
    assert services["ingestor"]["build"]["dockerfile"].endswith("Dockerfile.ingestor")
    assert services["featurizer"]["image"] == services["ingestor"]["image"]  # built once, by the ingestor
    for name in ("ingestor", "featurizer"):
        assert services[name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile.ingestor").read_text()
    assert "FROM python:3.11-slim" in dockerfile and "\nUSER app" in dockerfile
