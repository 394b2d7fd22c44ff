"""A soak of the live path: the offline market -> ws_ingest.py -> Apache Kafka -> featurizer, for minutes.

The market plays time-shifted copies of a recording back to back (``ShiftedCopies``): copy k is
the recording moved k recording-lengths later, so the ticks keep moving forward and every frame
is a new tick to the featurizer (the same frames looped would be dropped as late). Every
``sample_s`` the resident memory and CPU time of the ingestor, the featurizer and the broker
are sampled, with the machine's load. At the end the run is checked for loss: every ticker frame
the market sent is in ``ticks.raw`` once exact repeats are dropped (delivery is at least once),
and the feature rows on ``ticks.features`` and in the Parquet parts equal what replay makes of
``ticks.raw``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pandas as pd

from features.labels import sigma_column
from features.online import FeatureSpec
from features.replay import replay
from streaming.bench import (
    Service,
    collect_latencies,
    cpu_seconds,
    distinct,
    end_offsets,
    expected_rows,
    featurizer,
    ingestor,
    jvm_heap_mb,
    jvm_live_heap_mb,
    percentile,
    read_all,
    rss_mb,
    start_kafka,
    tail_reader,
)
from streaming.market import MarketServer, format_frame_time, frame_time_ns

log = logging.getLogger(__name__)

MB_PER_10_MIN_TOLERANCE = 5.0  # memory growth after the warm-up above this is not flat (0.7 GB a day)
MIN_JUDGED_S = 600.0  # a slope over less than this much time after the warm-up says nothing


class ShiftedCopies(Sequence):
    """``seconds`` of recorded time made of ``frames`` over and over, copy k shifted k periods later.

    The period is the recording's length plus its median gap between frames, so copies follow
    each other like the frames within one. Frames are made when asked for, not held in memory.
    """

    def __init__(self, frames: list[dict], seconds: float) -> None:
        times = [frame_time_ns(f) for f in frames]
        if not frames or any(t is None for t in times) or any(a > b for a, b in zip(times, times[1:])):
            raise ValueError("the recording must be ticker frames with times, in time order")
        self.frames = frames
        self.first_ns = times[0]
        self.offsets = [t - self.first_ns for t in times]
        gaps = sorted(b - a for a, b in zip(self.offsets, self.offsets[1:])) or [1_000_000_000]
        self.period_ns = self.offsets[-1] + gaps[len(gaps) // 2]
        total_ns = round(seconds * 1e9)
        full, rest = divmod(total_ns, self.period_ns)
        self.length = full * len(frames) + sum(1 for o in self.offsets if o < rest)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:  # type: ignore[override]
        if not 0 <= index < self.length:
            raise IndexError(index)
        copy, position = divmod(index, len(self.frames))
        frame = self.frames[position]
        if copy == 0:
            return frame
        shifted = self.first_ns + self.offsets[position] + copy * self.period_ns
        return {**frame, "timestamp": format_frame_time(shifted)}

    @property
    def copies(self) -> float:
        return self.length / len(self.frames)


# -- sampling memory, CPU and load ----------------------------------------------------------------


@dataclass
class Sample:
    t_s: float  # since the stream started
    rss_mb: dict[str, float | None]
    cpu_s: dict[str, float | None]
    load1: float
    sent: int  # ticker frames the market had sent
    heap_mb: tuple[float, float] | None = None  # the JVM's committed heap and old generation in use


class Sampler:
    """Samples the named processes every ``every_s`` in a thread until ``stop()``; the heap of the
    ``jvm`` one every ``heap_every`` samples (jstat starts a JVM of its own: not too often)."""

    def __init__(self, pids: dict[str, int], server: MarketServer, every_s: float, jvm: str | None = None,
                 heap_every: int = 6) -> None:
        self.pids = pids
        self.jvm = jvm
        self.heap_every = heap_every
        self.server = server
        self.every_s = every_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.every_s + 5)

    def _run(self) -> None:
        while True:
            sample = Sample(time.monotonic() - self._started,
                            {name: rss_mb(pid) for name, pid in self.pids.items()},
                            {name: cpu_seconds(pid) for name, pid in self.pids.items()},
                            os.getloadavg()[0], len(self.server.sent_tickers))
            if self.jvm is not None and len(self.samples) % self.heap_every == 0:
                sample.heap_mb = jvm_heap_mb(self.pids[self.jvm])
            self.samples.append(sample)
            if len(self.samples) % 6 == 0:
                log.info("soak %.0f s: %d frames sent; RSS %s MB; load %.1f", sample.t_s, sample.sent,
                         ", ".join(f"{n} {v:.0f}" for n, v in sample.rss_mb.items() if v is not None), sample.load1)
            if self._stop.wait(self.every_s):
                return


@dataclass
class Trend:
    """One process's resident memory over the soak."""

    start_mb: float  # the first sample after the warm-up
    end_mb: float
    max_mb: float
    slope_mb_per_10min: float  # least-squares slope over the samples after the warm-up
    judged_s: float  # the time those samples span

    @property
    def flat(self) -> bool | None:
        """None when the samples after the warm-up span too little time to judge."""
        if self.judged_s < MIN_JUDGED_S:
            return None
        return self.slope_mb_per_10min <= MB_PER_10_MIN_TOLERANCE


def memory_trend(points: list[tuple[float, float]], warmup_s: float) -> Trend:
    """The trend of (seconds, MB) samples after ``warmup_s``: first, last, max, and the slope."""
    after = [(t, mb) for t, mb in points if t >= warmup_s] or points[-1:]
    slope = 0.0
    if len(after) >= 2:
        mean_t = sum(t for t, _ in after) / len(after)
        mean_mb = sum(mb for _, mb in after) / len(after)
        spread = sum((t - mean_t) ** 2 for t, _ in after)
        if spread > 0:
            slope = sum((t - mean_t) * (mb - mean_mb) for t, mb in after) / spread * 600
    return Trend(after[0][1], after[-1][1], max(mb for _, mb in after), slope, after[-1][0] - after[0][0])


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """What reached ticks.raw and ticks.features, against what the market sent."""

    sent: int
    raw_records: int  # in ticks.raw, exact repeats included
    raw_distinct: int
    missing: int  # sent, never in ticks.raw
    unexpected: int  # in ticks.raw, never sent
    frames_twice: int  # one frame in two different raw records
    out_of_order: bool
    expected_rows: int  # what replay makes of ticks.raw
    feature_records: int  # on ticks.features, repeats included
    feature_distinct: int
    part_rows: int
    parts_equal_replay: bool

    @property
    def lossless(self) -> bool:
        return (self.missing == 0 and self.unexpected == 0 and self.frames_twice == 0 and not self.out_of_order
                and self.feature_distinct == self.expected_rows == self.part_rows and self.parts_equal_replay)


@dataclass
class SoakResult:
    minutes: float
    speed: float
    copies: float
    play_s: float  # first frame sent to the last
    catch_up_s: float  # last frame received to the last feature row readable on ticks.features
    delivery: Delivery
    memory: dict[str, Trend]
    broker_heap: Trend | None  # the JVM's committed heap (None without jstat)
    broker_old_gen_max_mb: float | None
    broker_live_heap_mb: float | None  # heap in use right after a full collection at the end
    cpu_share: dict[str, float]  # CPU seconds per second of the stream, per process
    warmup_s: float
    load_mean: float
    load_max: float
    latency_p50_ms: float  # frame received -> feature row readable, every row of the soak
    latency_p99_ms: float
    latency_max_ms: float
    ingest: dict = field(default_factory=dict)  # ws_ingest.py's final counters
    featurizer: dict = field(default_factory=dict)  # the featurizer's final report


def soak_run(recording: list[dict], minutes: float, speed: float, workdir: Path, spec: FeatureSpec,
             horizon_s: float, sample_s: float = 10.0) -> SoakResult:
    """Play ``minutes`` of shifted copies at ``speed`` through the live path; sample; check for loss."""
    frames = ShiftedCopies(recording, minutes * 60 * speed)
    log.info("soak: %d frames (%.1f copies of the recording) at %gx, about %.0f frames/s, for %g minutes",
             len(frames), frames.copies, speed, len(frames) / (minutes * 60), minutes)
    workdir.mkdir(parents=True, exist_ok=True)
    kafka = start_kafka(workdir)
    server = MarketServer(frames, speed=speed)  # type: ignore[arg-type]  (a sequence of frames)
    services: list[Service] = []
    timed: list[tuple[int, float]] = []  # (received_at ns, ms until readable) per feature row
    reading = threading.Event()
    reader = tail_reader(kafka.bootstrap, "ticks.features")
    reader_thread = threading.Thread(target=collect_latencies, args=(reader, timed, reading), daemon=True)
    out_dir = workdir / "stream"
    sampler = None
    try:
        fz = featurizer(kafka.bootstrap, workdir)
        services.append(fz)
        url = server.start()
        reader_thread.start()
        ingest = ingestor(url, kafka.bootstrap, workdir)
        services.append(ingest)
        assert kafka.process is not None
        sampler = Sampler({"ingestor": ingest.pid, "featurizer": fz.pid, "broker": kafka.process.pid},
                          server, sample_s, jvm="broker")
        sampler.start()
        started = time.monotonic()
        _wait(server.all_sent.is_set, minutes * 60 * 1.5 + 120, "the market to send every frame", [ingest, fz])
        played = time.monotonic()
        sampler.stop()
        sent = len(server.sent_tickers)
        _wait(lambda: sum(end_offsets(kafka.bootstrap, "ticks.raw").values()) >= sent, 300,
              "every frame in ticks.raw", [ingest])
        ingest.stop()
        raw = read_all(kafka.bootstrap, "ticks.raw")
        values = distinct([value for *_, value in raw])
        expected = expected_rows(values, spec)
        _wait(lambda: _part_rows(out_dir) >= expected
              and sum(end_offsets(kafka.bootstrap, "ticks.features").values()) >= expected, 600,
              "every feature row", [fz])
        live_heap = jvm_live_heap_mb(kafka.process.pid)  # the stream is over: a full collection harms nothing
        reading.set()
        reader_thread.join(10)
        fz.stop()
        feature_values = [value for *_, value in read_all(kafka.bootstrap, "ticks.features")]
        delivery = _check(server.sent_tickers, raw, values, expected, feature_values, out_dir, spec, horizon_s)
    finally:
        reading.set()
        if sampler is not None:
            sampler.stop()
        for service in reversed(services):
            service.stop()
        server.stop()
        reader.close()
        kafka.stop()
    samples = sampler.samples
    warmup_s = min(300.0, minutes * 60 / 6)
    memory = {name: memory_trend([(s.t_s, s.rss_mb[name]) for s in samples if s.rss_mb[name] is not None], warmup_s)
              for name in samples[0].rss_mb}
    heaps = [(s.t_s, s.heap_mb) for s in samples if s.heap_mb is not None]
    broker_heap = memory_trend([(t, heap[0]) for t, heap in heaps], warmup_s) if heaps else None
    old_gen_max = max(heap[1] for _, heap in heaps) if heaps else None
    span = samples[-1].t_s - samples[0].t_s
    cpu_share = {name: ((samples[-1].cpu_s[name] or 0.0) - (samples[0].cpu_s[name] or 0.0)) / span if span else 0.0
                 for name in samples[0].cpu_s}
    latencies = [ms for _, ms in timed] or [float("nan")]
    last_row_ns = max((ns + ms * 1e6 for ns, ms in timed), default=float("nan"))
    catch_up_s = (last_row_ns - max((ns for ns, _ in timed), default=0)) / 1e9
    loads = [s.load1 for s in samples]
    return SoakResult(minutes, speed, frames.copies, played - started, catch_up_s, delivery, memory, broker_heap,
                      old_gen_max, live_heap, cpu_share, warmup_s, sum(loads) / len(loads), max(loads),
                      percentile(latencies, 50), percentile(latencies, 99), max(latencies),
                      services[1].last_json() or {}, services[0].last_json() or {})


def _wait(predicate, timeout_s: float, what: str, services: list[Service]) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        for service in services:
            if service.popen.poll() is not None:
                raise RuntimeError(f"{service.name} exited with code {service.popen.returncode} while waiting for "
                                   f"{what}; see {service.err_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def _part_rows(out_dir: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in out_dir.glob("part-*.parquet"))


def _check(sent_texts: list[bytes], raw: list[tuple[int, int, bytes]], values: list[bytes], expected: int,
           feature_values: list[bytes], out_dir: Path, spec: FeatureSpec, horizon_s: float) -> Delivery:
    sent = [orjson.dumps(orjson.loads(t)) for t in sent_texts]
    delivered = [orjson.dumps(orjson.loads(v)["frame"]) for v in values]
    sent_set, delivered_set = set(sent), set(delivered)
    in_order = [f for f in sent if f in delivered_set] == distinct(delivered)
    return Delivery(len(sent), len(raw), len(values), len(sent_set - delivered_set), len(delivered_set - sent_set),
                    len(delivered) - len(delivered_set), not in_order, expected, len(feature_values),
                    len(set(feature_values)), _part_rows(out_dir), _parts_equal_replay(values, out_dir, spec, horizon_s))


def _parts_equal_replay(values: list[bytes], out_dir: Path, spec: FeatureSpec, horizon_s: float) -> bool:
    """The featurizer's Parquet parts, row for row, against replay of the same raw records."""
    with tempfile.TemporaryDirectory(prefix="soak-replay-") as tmp:
        path = Path(tmp) / "raw.ndjson"
        path.write_bytes(b"".join(v + b"\n" for v in values))
        expected, _ = replay([path], spec, horizon_s)
    expected = expected.drop(columns=[sigma_column(horizon_s)])
    parts = sorted(out_dir.glob("part-*.parquet"))  # by partition, then in the order written
    if not parts:
        return expected.empty
    got = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    order = {"by": "product_id", "kind": "stable"}
    return got.sort_values(**order).reset_index(drop=True).equals(expected.sort_values(**order).reset_index(drop=True))
