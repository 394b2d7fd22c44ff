"""Streaming benchmarks: throughput through broker + featurizer, and receipt-to-row latency.

Everything runs on loopback with the real pieces: the local broker, ws_ingest.py and
features/featurizer.py as subprocesses, and a small WebSocket server that plays recorded
Coinbase frames at a chosen rate (in the shape the Advanced Trade endpoint sends them).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson
from kafka import TopicPartition

from common.config import REPO_ROOT
from common.kafka import ensure_topics, make_consumer, make_producer
from features.online import FeatureSpec
from features.pipeline import FeaturePipeline
from features.ticks import parse_time_ns

log = logging.getLogger(__name__)


def load_frames(path: Path) -> list[dict]:
    """Ticker frames of a recording (wrapped or bare), in order."""
    frames = []
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
        for line in handle:
            obj = orjson.loads(line)
            frame = obj.get("payload", obj)
            if frame.get("channel") == "ticker":
                frames.append(frame)
    return frames


def expected_rows(values: list[bytes], spec: FeatureSpec) -> int:
    """How many feature rows the records give (what the featurizer must publish)."""
    return len(FeaturePipeline(spec).process_batch(values)[0])


class FramePlayer:
    """A loopback WebSocket endpoint that accepts the subscriptions and plays frames at ``rate`` per second."""

    def __init__(self, frames: list[dict], rate: float) -> None:
        self.frames = frames
        self.rate = rate  # 0: as fast as the socket takes them
        self.done = threading.Event()
        self.url = ""
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._ready = threading.Event()

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the frame player did not start")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._play, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
            self.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            self._ready.set()
            await self._stop.wait()

    async def _play(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for _ in range(2):  # ticker and heartbeats subscriptions
                await ws.recv()
            seq, beat, last_beat = 0, 0, time.monotonic()
            start = time.monotonic()
            for i, frame in enumerate(self.frames):
                if self.rate:
                    delay = start + i / self.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif i % 256 == 0:
                    await asyncio.sleep(0)
                if time.monotonic() - last_beat >= 1.0:
                    seq, beat, last_beat = seq + 1, beat + 1, time.monotonic()
                    await ws.send(orjson.dumps({"channel": "heartbeats", "sequence_num": seq, "timestamp": _now(),
                                                "events": [{"heartbeat_counter": beat}]}).decode())
                seq += 1
                await ws.send(orjson.dumps(dict(frame, sequence_num=seq)).decode())
            self.done.set()
            while True:
                await asyncio.sleep(0.5)
                seq, beat = seq + 1, beat + 1
                await ws.send(orjson.dumps({"channel": "heartbeats", "sequence_num": seq, "timestamp": _now(),
                                            "events": [{"heartbeat_counter": beat}]}).decode())
        except ConnectionClosed:
            return


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class Service:
    """A project script run as a subprocess; output in files, stopped with SIGTERM."""

    def __init__(self, name: str, args: list[str], workdir: Path) -> None:
        self.name = name
        self.err_path = workdir / f"{name}.err"
        with open(workdir / f"{name}.out", "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def featurizer(bootstrap: str, workdir: Path, profile: Path | None = None) -> Service:
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    return Service("featurizer", [*profiler, "features/featurizer.py", "--topic_in", "ticks.raw", "--topic_out",
                                  "ticks.features", "--bootstrap", bootstrap, "--out-dir", str(workdir / "stream")],
                   workdir)


def tail_reader(bootstrap: str, topic: str = "ticks.features"):
    """A consumer of the end of ``topic`` that sees records as soon as the broker has them."""
    ensure_topics(bootstrap, {"ticks.raw": 3, "ticks.features": 3, "ticks.dlq": 1})
    consumer = make_consumer(bootstrap, None, fetch_max_wait_ms=10)
    partitions = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(partitions)
    consumer.seek_to_end()
    for tp in partitions:
        consumer.position(tp)  # resolve now, before anything is produced
    return consumer


@dataclass
class Latency:
    rows: int
    expected: int
    p50_ms: float
    p99_ms: float
    max_ms: float  # including the warm-up rows
    raw_p50_ms: float  # receipt -> raw record readable from ticks.raw (the first hop alone)
    raw_p99_ms: float


def latency_run(frames: list[dict], rate: float, bootstrap: str, workdir: Path, spec: FeatureSpec,
                warmup_rows: int = 0, timeout_s: float = 300.0) -> Latency:
    """Play frames through ws_ingest.py and the featurizer; time receipt -> row readable in ticks.features.

    The first ``warmup_rows`` rows (connections and metadata still settling) are left out of
    the percentiles; ``max_ms`` includes them.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    expected = expected_rows([orjson.dumps(f) for f in frames], spec)
    reader = tail_reader(bootstrap)
    raw_reader = tail_reader(bootstrap, "ticks.raw")
    fz = featurizer(bootstrap, workdir)
    player = FramePlayer(frames, rate)
    url = player.start()
    _wait_for_group(workdir / "featurizer.err", fz)
    ingest = Service("ingest", ["scripts/ws_ingest.py", "--pair", "BTC-USD", "--minutes", "0", "--ws-url", url,
                                "--bootstrap", bootstrap, "--spool-dir", str(workdir / "spool")], workdir)
    latencies: list[float] = []
    raw_latencies: list[float] = []
    done = threading.Event()
    raw_thread = threading.Thread(target=_collect, args=(raw_reader, raw_latencies, done), daemon=True)
    raw_thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while len(latencies) < expected and time.monotonic() < deadline:
            _poll_latencies(reader, latencies)
    finally:
        done.set()
        raw_thread.join(10)
        for service in (ingest, fz):
            service.stop()
        player.stop()
        reader.close()
        raw_reader.close()
    if len(latencies) <= warmup_rows or len(raw_latencies) <= warmup_rows:
        raise RuntimeError(f"too few feature rows arrived ({len(latencies)}); see {workdir}/*.err")
    worst = max(latencies)
    latencies = sorted(latencies[warmup_rows:])
    raw_latencies = sorted(raw_latencies[warmup_rows:])
    return Latency(len(latencies), expected, _pct(latencies, 50), _pct(latencies, 99), worst,
                   _pct(raw_latencies, 50), _pct(raw_latencies, 99))


def _poll_latencies(consumer, sink: list[float]) -> None:
    # A short poll timeout: kafka-python's poll() may only return at its timeout even when a
    # fetch has completed meanwhile, which would add up to that much to every figure.
    for records in consumer.poll(timeout_ms=5).values():
        now = time.time_ns()
        for record in records:
            stamp = orjson.loads(record.value).get("received_at")
            if stamp is not None:
                sink.append((now - parse_time_ns(stamp)) / 1e6)


def _collect(consumer, sink: list[float], done: threading.Event) -> None:
    while not done.is_set():
        _poll_latencies(consumer, sink)


def _wait_for_group(err_path: Path, service: Service, timeout_s: float = 60.0) -> None:
    """Start the stream only once the featurizer owns its partitions (the group join takes ~3 s)."""
    deadline = time.monotonic() + timeout_s
    while "assigned [" not in err_path.read_text():
        if service.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the featurizer did not join its group; see {err_path}")
        time.sleep(0.05)


def _pct(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class Throughput:
    records: int
    rows: int
    produce_per_s: float
    featurize_per_s: float
    cpu_s: dict  # CPU seconds while rows arrived: featurizer, its producer process, the broker
    window_s: float  # first to last row


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0.0 where it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def keyed_lines(paths: list[Path]) -> list[tuple[bytes, bytes]]:
    """(product id, line) of every ticker line of recorded files, for keying ticks.raw by product."""
    out = []
    for path in paths:
        with gzip.open(path, "rb") as handle:
            for line in handle:
                if line.strip():
                    out.append((str(orjson.loads(line).get("product_id", "")).encode(), line.rstrip(b"\n")))
    return out


def throughput_run(lines: list[tuple[bytes, bytes]], bootstrap: str, workdir: Path, spec: FeatureSpec,
                   broker_pid: int | None = None, profile: Path | None = None,
                   timeout_s: float = 600.0) -> Throughput:
    """Preload ticks.raw (keyed by product), then time the featurizer turning all of it into rows on ticks.features.

    With ``profile``, the featurizer runs under cProfile and writes its statistics there when it stops.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    expected = expected_rows([line for _, line in lines], spec)
    reader = tail_reader(bootstrap)
    producer = make_producer(bootstrap, linger_ms=20, batch_size=256 * 1024, delivery_timeout_ms=120_000)
    started = time.monotonic()
    for key, line in lines:
        producer.send("ticks.raw", key=key, value=line)
    producer.flush(300)
    produce_s = time.monotonic() - started
    producer.close()
    fz = featurizer(bootstrap, workdir, profile)
    rows, first, last = 0, None, None
    cpu_first: dict[str, float] = {}
    cpu_last: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while rows < expected and time.monotonic() < deadline:
            for records in reader.poll(timeout_ms=100, max_records=10_000).values():
                now = time.monotonic()
                if first is None:
                    first, cpu_first = now, _cpu(fz.popen.pid, broker_pid)
                last = now
                rows += len(records)
        cpu_last = _cpu(fz.popen.pid, broker_pid)
    finally:
        fz.stop(timeout_s=120.0)
        reader.close()
    if rows < expected or first is None or last is None or last <= first:
        raise RuntimeError(f"only {rows} of {expected} rows arrived; see {workdir}/featurizer.err")
    cpu = {name: cpu_last.get(name, 0.0) - cpu_first.get(name, 0.0) for name in cpu_last}
    return Throughput(len(lines), rows, len(lines) / produce_s, rows / (last - first), cpu, last - first)


def _cpu(featurizer_pid: int, broker_pid: int | None) -> dict[str, float]:
    out = {"featurizer": process_cpu_s(featurizer_pid),
           "producer process": sum(process_cpu_s(pid) for pid in child_pids(featurizer_pid))}
    if broker_pid is not None:
        out["broker"] = process_cpu_s(broker_pid)
    return out


@dataclass
class ProducerCost:
    records: int
    cpu_us_per_record: float  # CPU of the sending thread and kafka-python's I/O thread, per record, unprofiled
    profile: Path


def producer_profile(lines: list[tuple[bytes, bytes]], bootstrap: str, spec: FeatureSpec, profile: Path,
                     limit: int = 100_000) -> ProducerCost:
    """Send the feature rows of ``lines`` as the featurizer's producer process does, under cProfile.

    The same kafka-python settings and partitioner as streaming/producer_process.py, in this
    process, so the profile says where a record's cost goes in the client.
    """
    import cProfile
    from common.kafka import KeyPartitioner
    from streaming.featurizer import PRODUCER_OPTIONS

    columns = spec.columns
    batch, _ = FeaturePipeline(spec).process_batch([line for _, line in lines[:limit]])
    records = [(row[0].encode(), orjson.dumps(dict(zip(columns, row)))) for row in batch.rows()]
    ensure_topics(bootstrap, {"ticks.raw": 3, "ticks.features": 3, "ticks.dlq": 1})
    producer = make_producer(bootstrap, **PRODUCER_OPTIONS)
    partitioner = KeyPartitioner(producer, "ticks.features")
    started = time.process_time()
    for key, value in records:  # measured without the profiler's overhead ...
        producer.send("ticks.features", key=key, value=value, partition=partitioner(key))
    producer.flush(120)
    cpu = time.process_time() - started
    profiler = cProfile.Profile()
    profiler.enable()
    for key, value in records:  # ... then again, profiled
        producer.send("ticks.features", key=key, value=value, partition=partitioner(key))
    producer.flush(120)
    profiler.disable()
    producer.close()
    profiler.dump_stats(str(profile))
    return ProducerCost(len(records), cpu / len(records) * 1e6, profile)
