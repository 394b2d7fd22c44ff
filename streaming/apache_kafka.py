"""Apache Kafka on loopback without Docker: a single-node KRaft broker run from Maven jars.

The reference broker for the integration and fault tests, and the one to use locally when a
durable log matters (the zero-setup Tansu broker keeps everything in memory). ``fetch_jars``
copies ``org.apache.kafka:kafka_2.13`` and its runtime dependencies into an ignored cache
folder with ``mvn`` (once; Maven's own cache makes later fetches fast). ``ApacheKafka`` formats
a data directory once (a KRaft cluster id in ``meta.properties``), then starts, stops and kills
the broker on it: a restart keeps every topic, record and committed offset.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from common.config import REPO_ROOT
from common.net import free_port
from streaming.broker import BrokerError, stop_pid

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
RUNTIME_DIR = Path(__file__).resolve().parent / "kafka_runtime"  # the pom and the log4j2 settings
CACHE_DIR = REPO_ROOT / ".kafka" / f"apache-{KAFKA_VERSION}"
HEAP = ("-Xms256m", "-Xmx768m")
READY_TIMEOUT_S = 60.0


def fetch_jars(cache_dir: Path = CACHE_DIR) -> Path:
    """The folder of broker jars, fetched with Maven the first time; raises BrokerError."""
    libs = cache_dir / "libs"
    done = cache_dir / ".complete"
    if done.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Apache Kafka's jars are fetched with Maven, and `mvn` is not on PATH: "
                          "install Maven (and Java 17+), or use --engine tansu")
    if shutil.which("java") is None:
        raise BrokerError("Apache Kafka needs Java 17 or newer and `java` is not on PATH: install a JDK")
    log.info("fetching Apache Kafka %s jars with Maven into %s (once)", KAFKA_VERSION, libs)
    shutil.rmtree(libs, ignore_errors=True)
    command = [mvn, "-q", "-B", "-f", str(RUNTIME_DIR / "pom.xml"), "dependency:copy-dependencies",
               f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise BrokerError("mvn could not fetch Apache Kafka (is Maven Central reachable?): " + " | ".join(tail))
    done.write_text(KAFKA_VERSION + "\n")
    return libs



def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """A single-node KRaft broker+controller on 127.0.0.1: no auto-creation, replication 1."""
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data_dir / 'log'}",
        "auto.create.topics.enable=false",  # topics are created explicitly, with their partition counts
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",  # a lone consumer joins at once
        "log.retention.hours=168",
        "",
    ])


class ApacheKafka:
    """One broker on 127.0.0.1:``port`` with its data in ``data_dir`` (kept across restarts)."""

    def __init__(self, port: int, data_dir: Path, log_path: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.data_dir = data_dir
        self.log_path = log_path or data_dir / "broker.log"
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    def _controller_port(self) -> int:
        """Chosen once per data directory: the quorum's address is part of its identity."""
        path = self.data_dir / "controller.port"
        if path.exists():
            return int(path.read_text().strip())
        port = free_port()
        path.write_text(f"{port}\n")
        return port

    def _java(self, libs: Path, main: str, *args: str, heap: tuple[str, ...] = ()) -> list[str]:
        return ["java", *heap, f"-Dlog4j2.configurationFile={RUNTIME_DIR / 'log4j2.properties'}",
                "-cp", f"{libs}/*", main, *args]

    def prepare(self) -> list[str]:
        """Fetch the jars, write the properties, format the storage once; the start command."""
        libs = fetch_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(server_properties(self.port, self._controller_port(), self.data_dir))
        if not (self.data_dir / "log" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            result = subprocess.run(self._java(libs, "kafka.tools.StorageTool", "format",
                                               f"--cluster-id={cluster_id}",  # an id may start with "-"
                                               f"--config={self.properties_path}"),
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise BrokerError(f"cannot format {self.data_dir}: {result.stdout.strip()} {result.stderr.strip()}"[-800:])
        return self._java(libs, "kafka.Kafka", str(self.properties_path), heap=HEAP)

    def start(self, detach: bool = False, timeout_s: float = READY_TIMEOUT_S) -> int:
        """Start the broker and wait until it answers Kafka requests; returns its pid."""
        command = self.prepare()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=subprocess.STDOUT, start_new_session=detach)
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self.process.poll() is not None:
                raise BrokerError(f"Apache Kafka exited with code {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(f"Apache Kafka did not answer on {self.bootstrap} within {timeout_s:.0f} s; "
                                  f"see {self.log_path}")
            time.sleep(0.2)
        log.info("Apache Kafka pid %d ready on %s (data in %s)", self.process.pid, self.bootstrap, self.data_dir)
        return self.process.pid

    def _answers(self) -> bool:
        """True once the broker serves metadata (listening alone is not ready in KRaft)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                pass
        except OSError:
            return False
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000,
                                     bootstrap_timeout_ms=2000)
        except KafkaError:
            return False
        try:
            admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: a controlled shutdown that flushes the log (SIGKILL after ``timeout_s``)."""
        if self.process is not None:
            stop_pid(self.process.pid, timeout_s, self.process)
            self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash: the next start recovers the log from disk."""
        if self.process is not None:
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
            self.process = None


def is_apache_kafka_process(pid: int) -> bool:
    """True when ``pid`` runs kafka.Kafka (so a stale pid file never kills a stranger)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline
