"""Streaming benchmarks on Apache Kafka: featurizer throughput and frame-to-feature latency.

Everything runs on loopback with the real pieces: a single-node Apache Kafka (KRaft) on a free
port with its data in a temporary folder, the offline market (streaming/market.py) playing
recorded Coinbase frames over the Advanced Trade protocol, and ws_ingest.py and
features/featurizer.py as subprocesses. The soak (streaming/soak.py) is built from the same
parts. Latency is measured from ``received_at``, the ingestor's receive time that the
featurizer carries into every feature row, to the moment a consumer can read the row.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaConsumer, TopicPartition

from common.config import REPO_ROOT
from common.kafka import ensure_topics, make_consumer, make_producer
from features.online import FeatureSpec
from features.pipeline import FeaturePipeline
from features.ticks import parse_time_ns, raw_record
from common.net import free_port
from streaming.apache_kafka import ApacheKafka
from streaming.market import MarketServer, frame_time_ns

log = logging.getLogger(__name__)

TOPICS = {"ticks.raw": 3, "ticks.features": 3, "ticks.dlq": 1}
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the pieces: broker, scripts, readers -------------------------------------------------


def start_kafka(workdir: Path) -> ApacheKafka:
    """A fresh Apache Kafka on a free port, data in ``workdir``, the project's topics created."""
    kafka = ApacheKafka(free_port(), workdir / "kafka")
    kafka.start()
    ensure_topics(kafka.bootstrap, TOPICS)
    return kafka


class Service:
    """A project script run as a subprocess, its output in files (no pipe can fill up and block it)."""

    def __init__(self, name: str, args: list[str], workdir: Path) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        workdir.mkdir(parents=True, exist_ok=True)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout_s``); the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0f s; killing it", self.name, timeout_s)
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    def last_json(self) -> dict | None:
        """The script's final JSON line on stdout, if it wrote one."""
        lines = [line for line in self.out_path.read_bytes().splitlines() if line.startswith(b"{")]
        return orjson.loads(lines[-1]) if lines else None

    def wait_for(self, text: str, timeout_s: float = 60.0) -> None:
        """Block until ``text`` appears in the script's log; RuntimeError if it exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while text not in self.err_path.read_text():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} never logged {text!r}; see {self.err_path}")
            time.sleep(0.05)


def featurizer(bootstrap: str, workdir: Path) -> Service:
    """features/featurizer.py with its defaults, parts in ``workdir``/stream; returns once it owns its partitions."""
    service = Service("featurizer", ["features/featurizer.py", "--topic_in", "ticks.raw", "--topic_out",
                                     "ticks.features", "--bootstrap", bootstrap,
                                     "--out-dir", str(workdir / "stream")], workdir)
    service.wait_for("assigned [")
    return service


def ingestor(url: str, bootstrap: str, workdir: Path) -> Service:
    """scripts/ws_ingest.py until stopped, its journal in ``workdir``/spool, no disk mirror."""
    return Service("ingest", ["scripts/ws_ingest.py", "--pair", "BTC-USD", "--minutes", "0", "--ws-url", url,
                              "--bootstrap", bootstrap, "--spool-dir", str(workdir / "spool")], workdir)


def tail_reader(bootstrap: str, topic: str) -> KafkaConsumer:
    """A consumer of the end of ``topic`` (no group) that sees records as soon as the broker has them."""
    consumer = make_consumer(bootstrap, None, fetch_max_wait_ms=10)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    consumer.seek_to_end()
    for tp in partitions:
        consumer.position(tp)  # resolve now, before anything is produced
    return consumer


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = make_consumer(bootstrap, None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, timeout_s: float = 300.0) -> list[tuple[int, int, bytes]]:
    """Every record of ``topic`` up to its end offsets as of now: (partition, offset, value), in log order."""
    consumer = make_consumer(bootstrap, None, fetch_max_wait_ms=100)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        out: list[tuple[int, int, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end within {timeout_s:.0f} s")
            for records in consumer.poll(timeout_ms=200, max_records=50_000).values():
                out.extend((r.partition, r.offset, r.value) for r in records)
        return sorted(out)
    finally:
        consumer.close()


# -- measuring the machine and the processes ------------------------------------------------


def rss_mb(pid: int) -> float | None:
    """Resident memory of a running process, in MB (None once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB / 1024
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a running process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return None


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc), such as the featurizer's producer process."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return children


def family_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of a process and of each of its children, by pid."""
    times = {p: cpu_seconds(p) for p in (pid, *child_pids(pid))}
    return {p: t for p, t in times.items() if t is not None}


def jvm_heap_mb(pid: int) -> tuple[float, float] | None:
    """A JVM's committed heap and its old generation's use, in MB, from the JDK's ``jstat -gc``.

    A JVM's resident memory grows while it commits heap up to -Xmx, leak or not; the committed
    heap tells that growth apart. None where jstat is missing or the process is gone.
    """
    jstat = shutil.which("jstat")
    if jstat is None:
        return None
    try:
        lines = subprocess.run([jstat, "-gc", str(pid)], capture_output=True, text=True, timeout=30).stdout.splitlines()
        gc = dict(zip(lines[0].split(), map(float, lines[1].split())))
        return (gc["S0C"] + gc["S1C"] + gc["EC"] + gc["OC"]) / 1024, gc["OU"] / 1024
    except (OSError, subprocess.TimeoutExpired, IndexError, KeyError, ValueError):
        return None


def jvm_live_heap_mb(pid: int) -> float | None:
    """Heap in use right after a full collection (``jcmd GC.run``; G1 moves every survivor into the
    old generation): what the JVM really keeps. None where jcmd is missing or the process is gone."""
    jcmd = shutil.which("jcmd")
    if jcmd is None:
        return None
    try:
        subprocess.run([jcmd, str(pid), "GC.run"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    heap = jvm_heap_mb(pid)
    return None if heap is None else heap[1]


class LoadWatch:
    """Samples the 1-minute load average every few seconds, to say how busy the machine was."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoadWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.every_s + 1)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every_s):
                return

    def line(self) -> str:
        if not self.samples:
            return "load average not sampled"
        mean = sum(self.samples) / len(self.samples)
        return (f"1-minute load average {mean:.1f} on average (at most {max(self.samples):.1f}) "
                f"on {os.cpu_count()} cores while it ran")


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile of ``values`` (not necessarily sorted)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def distinct(values: list[bytes]) -> list[bytes]:
    """Values in order, exact repeats left out (at-least-once delivery repeats records)."""
    seen: set[bytes] = set()
    out = []
    for value in values:
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def expected_rows(values: list[bytes], spec: FeatureSpec) -> int:
    """How many feature rows replay makes of these raw records (what the featurizer must publish)."""
    pipeline = FeaturePipeline(spec)
    return sum(len(pipeline.process(v)[0]) for v in values)


def frames_for(frames: list[dict], seconds: float) -> list[dict]:
    """The leading frames of a recording that span ``seconds`` of its time."""
    first = frame_time_ns(frames[0])
    assert first is not None
    return [f for f in frames if (frame_time_ns(f) or first) - first < seconds * 1e9]


# -- latency: frame receipt -> feature row readable -----------------------------------------


@dataclass
class Latency:
    frames: int  # ticker frames the market sent
    rows: int  # feature rows timed (after the warm-up)
    all_rows: int  # feature rows read, warm-up included
    expected: int  # rows replay makes of the frames
    p50_ms: float
    p99_ms: float
    max_ms: float
    raw_p50_ms: float  # receipt -> raw record readable on ticks.raw (the first hop alone)
    raw_p99_ms: float
    span_s: float  # first frame received to last row readable

    @property
    def rows_per_s(self) -> float:
        return self.all_rows / self.span_s if self.span_s > 0 else 0.0


def latency_run(frames: list[dict], speed: float, workdir: Path, spec: FeatureSpec,
                warmup_s: float = 0.0, timeout_s: float = 600.0) -> Latency:
    """Play ``frames`` at ``speed`` through ws_ingest.py, Apache Kafka and the featurizer; time each row.

    Rows of frames received in the first ``warmup_s`` seconds (connections and metadata still
    settling) are left out of the percentiles.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    kafka = start_kafka(workdir)
    services: list[Service] = []
    server = MarketServer(frames, speed=speed)
    readers = [tail_reader(kafka.bootstrap, "ticks.features"), tail_reader(kafka.bootstrap, "ticks.raw")]
    timed: list[tuple[int, float]] = []  # (received_at ns, ms until readable) per feature row
    raw_timed: list[tuple[int, float]] = []
    done = threading.Event()
    raw_thread = threading.Thread(target=collect_latencies, args=(readers[1], raw_timed, done), daemon=True)
    try:
        services.append(featurizer(kafka.bootstrap, workdir))
        url = server.start()
        raw_thread.start()
        services.append(ingestor(url, kafka.bootstrap, workdir))
        deadline = time.monotonic() + timeout_s
        expected = None
        while expected is None or len(timed) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(timed)} of {expected} feature rows arrived in {timeout_s:.0f} s; "
                                   f"see {workdir}/*.err")
            poll_latencies(readers[0], timed)
            if expected is None and server.all_sent.is_set():
                expected = expected_rows([orjson.dumps(t) for t in _sent_frames(server)], spec)
    finally:
        done.set()
        if raw_thread.is_alive():
            raw_thread.join(10)
        for service in reversed(services):
            service.stop()
        server.stop()
        for reader in readers:
            reader.close()
        kafka.stop()
    if not timed:
        raise RuntimeError(f"no feature row arrived; see {workdir}/*.err")
    first_ns = min(ns for ns, _ in timed)
    cut = first_ns + round(warmup_s * 1e9)  # in integers: a float loses the last digits of a time in ns
    kept = [ms for ns, ms in timed if ns >= cut]
    raw_kept = [ms for ns, ms in raw_timed if ns >= cut]
    if not kept or not raw_kept:
        raise RuntimeError(f"no feature row after the {warmup_s:g} s warm-up; see {workdir}/*.err")
    span_s = max(ns / 1e9 + ms / 1e3 for ns, ms in timed) - first_ns / 1e9
    return Latency(len(server.sent_tickers), len(kept), len(timed), expected, percentile(kept, 50),
                   percentile(kept, 99), max(kept), percentile(raw_kept, 50), percentile(raw_kept, 99), span_s)


def _sent_frames(server: MarketServer) -> list[dict]:
    return [orjson.loads(text) for text in server.sent_tickers]


def poll_latencies(consumer: KafkaConsumer, sink: list[tuple[int, float]]) -> None:
    # A short poll timeout: kafka-python's poll() may only return at its timeout even when a
    # fetch has completed meanwhile, which would add up to that much to every figure.
    for records in consumer.poll(timeout_ms=5).values():
        now = time.time_ns()
        for record in records:
            stamp = orjson.loads(record.value).get("received_at")
            if stamp is not None:
                received = parse_time_ns(stamp)
                sink.append((received, (now - received) / 1e6))


def collect_latencies(consumer: KafkaConsumer, sink: list[tuple[int, float]], done: threading.Event) -> None:
    """Time every row ``consumer`` reads until ``done`` is set (run in a thread)."""
    while not done.is_set():
        poll_latencies(consumer, sink)


# -- throughput: a preloaded ticks.raw through the featurizer --------------------------------


@dataclass
class Throughput:
    records: int
    rows: int
    produce_per_s: float  # loading ticks.raw (acks=all), for reference
    featurize_per_s: float  # rows readable per second, first row to last
    whole_run_s: float  # featurizer start (imports, group join) to the last row
    cpu_s: float  # CPU time the featurizer process used
    producer_cpu_s: float  # CPU time its producer process (a child) used


def preload_records(frames: list[dict]) -> list[bytes]:
    """The raw records ws_ingest.py would have written for these frames, received at their own time."""
    return [raw_record(orjson.dumps(frame), frame_time_ns(frame) or 0) for frame in frames]


def throughput_run(records: list[bytes], workdir: Path, spec: FeatureSpec, timeout_s: float = 600.0) -> Throughput:
    """Preload ticks.raw, then time the featurizer turning all of it into rows readable on ticks.features."""
    workdir.mkdir(parents=True, exist_ok=True)
    expected = expected_rows(records, spec)
    kafka = start_kafka(workdir)
    reader = tail_reader(kafka.bootstrap, "ticks.features")
    service = None
    try:
        producer = make_producer(kafka.bootstrap, linger_ms=20, batch_size=256 * 1024, delivery_timeout_ms=120_000)
        started = time.monotonic()
        for record in records:
            producer.send("ticks.raw", key=b"BTC-USD", value=record)
        producer.flush(120)
        produce_s = time.monotonic() - started
        producer.close()
        launched = time.monotonic()
        service = featurizer(kafka.bootstrap, workdir)
        cpu_before = family_cpu_seconds(service.pid)
        rows, first, last = 0, None, None
        deadline = time.monotonic() + timeout_s
        while rows < expected and time.monotonic() < deadline:
            for batch in reader.poll(timeout_ms=100, max_records=10_000).values():
                now = time.monotonic()
                first = first if first is not None else now
                last = now
                rows += len(batch)
        cpu_after = family_cpu_seconds(service.pid)
        cpu_s = cpu_after.get(service.pid, 0.0) - cpu_before.get(service.pid, 0.0)
        producer_cpu_s = sum(t - cpu_before.get(p, 0.0) for p, t in cpu_after.items() if p != service.pid)
    finally:
        if service is not None:
            service.stop()
        reader.close()
        kafka.stop()
    if rows < expected or first is None or last is None or last <= first:
        raise RuntimeError(f"only {rows} of {expected} rows arrived; see {workdir}/featurizer.err")
    return Throughput(len(records), rows, len(records) / produce_s, rows / (last - first), last - launched, cpu_s,
                      producer_cpu_s)
