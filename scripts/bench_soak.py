"""Soak the live path on Apache Kafka and write the "soak" section of the benchmark report.

    python scripts/bench_soak.py [--minutes 30] [--speed 20] [--no-write]

The offline market plays the 2026-04-05 recording (20 minutes of real BTC-USD Advanced Trade
frames, about 5 a second) at --speed times its own pace, as time-shifted copies back to back
(copy k moved k recording-lengths later, so every frame is a new tick), for --minutes, through
ws_ingest.py -> Apache Kafka -> features/featurizer.py. It checks that nothing was lost (every
frame sent is in ticks.raw, exact repeats dropped; the feature rows on ticks.features and in the
Parquet parts equal replay of ticks.raw) and that memory stays flat (resident memory of the
ingestor, the featurizer and the broker every 10 s). Exits 1 when anything was lost.
Try it with --minutes 2; `make bench` runs the full 30 minutes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from common.benchreport import machine_line, write_section
from common.config import REPO_ROOT, ConfigError, load_config
from common.kafka import tame_client_logs
from common.logs import setup_logging
from features.replay import InputFileError
from streaming.apache_kafka import KAFKA_VERSION
from streaming.broker import BrokerError
from streaming.market import recorded_frames
from streaming.soak import MB_PER_10_MIN_TOLERANCE, MIN_JUDGED_S, SoakResult, soak_run

log = logging.getLogger(__name__)
FRAMES = REPO_ROOT / "data" / "sample" / "btcusd-2026-04-05-frames" / "BTC_USD.ndjson.gz"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak (default 30)")
    parser.add_argument("--speed", type=float, default=20.0, help="times the recording's own pace (default 20)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write the report")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    if not 0 < args.minutes <= 24 * 60 or not 0 < args.speed <= 1000:
        print("bench_soak: --minutes must be in (0, 1440] and --speed in (0, 1000]", file=sys.stderr)
        return 2
    try:
        cfg = load_config()
        recording = recorded_frames([FRAMES])
    except (ConfigError, InputFileError) as exc:
        print(f"bench_soak: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        try:
            result = soak_run(recording, args.minutes, args.speed, Path(tmp), cfg.features, cfg.label.horizon_s)
        except (BrokerError, RuntimeError) as exc:
            print(f"bench_soak: {exc}", file=sys.stderr)
            return 1
    body = render(result)
    print(body)
    if not args.no_write:
        print(f"written to {write_section('soak', body)}")
    if not result.delivery.lossless:
        print("bench_soak: records were lost or changed; see the soak section above", file=sys.stderr)
        return 1
    return 0


def _n(counters: dict, name: str) -> str:
    value = counters.get(name)
    return f"{value:,}" if isinstance(value, int) else "?"


def _old_gen(r: SoakResult) -> str:
    parts = []
    if r.broker_old_gen_max_mb is not None:
        parts.append(f"old generation in use at most {r.broker_old_gen_max_mb:.0f} MB while it ran")
    if r.broker_live_heap_mb is not None:
        parts.append(f"{r.broker_live_heap_mb:.0f} MB of heap in use right after a full collection at the end")
    return f" ({'; '.join(parts)})" if parts else ""


def _met(ok: bool | None) -> str:
    return "too short to judge" if ok is None else ("met" if ok else "**not met**")


def render(r: SoakResult) -> str:
    d = r.delivery
    rate = d.sent / r.play_s if r.play_s else 0.0
    memory_rows = "\n".join(
        f"| {name} | {t.start_mb:.0f} | {t.end_mb:.0f} | {t.max_mb:.0f} | {t.slope_mb_per_10min:+.1f} | "
        f"<= {MB_PER_10_MIN_TOLERANCE:g} | {_met(t.flat)} |" for name, t in r.memory.items())
    if r.broker_heap is not None:
        h = r.broker_heap
        memory_rows += (f"\n| broker: JVM heap committed | {h.start_mb:.0f} | {h.end_mb:.0f} | {h.max_mb:.0f} | "
                        f"{h.slope_mb_per_10min:+.1f} | | |")
    cpu = ", ".join(f"{name} {share:.0%}" for name, share in r.cpu_share.items())
    ingest = r.ingest
    summary = r.featurizer.get("summary", {})
    return f"""## Soak: {r.minutes:g} minutes at {r.speed:g}x live rate

{machine_line()} 1-minute load average {r.load_mean:.1f} on average (at most {r.load_max:.1f}) while it ran.

`ws_ingest.py` -> Apache Kafka {KAFKA_VERSION} (single-node KRaft, loopback) -> `features/featurizer.py`,
each a separate process with its default settings, fed by the offline market. The market plays
the 2026-04-05 recording (5,970 real BTC-USD frames in 20 minutes, about 5 a second) at
{r.speed:g}x its own pace, as **time-shifted copies** back to back ({r.copies:.1f} copies: copy k
is the recording moved k recording-lengths later, so every frame is a new tick; looping the
same frames would make the featurizer drop them as late).

| measure | value | target | met |
|---|---|---|---|
| frames sent by the market | {d.sent:,} in {r.play_s / 60:.1f} min ({rate:,.0f} frames/s) | | |
| frames missing from ticks.raw (exact repeats dropped) | **{d.missing}** | 0 | {_met(d.missing == 0)} |
| raw records in ticks.raw / after dropping exact repeats | {d.raw_records:,} / {d.raw_distinct:,} | | |
| frames in ticks.raw that were never sent / in two raw records / out of order | {d.unexpected} / {d.frames_twice} / {"yes" if d.out_of_order else "no"} | 0 / 0 / no | {_met(not d.unexpected and not d.frames_twice and not d.out_of_order)} |
| feature rows: replay of ticks.raw / on ticks.features (repeats dropped) / in the Parquet parts | {d.expected_rows:,} / {d.feature_distinct:,} / {d.part_rows:,} | all equal | {_met(d.expected_rows == d.feature_distinct == d.part_rows)} |
| Parquet parts equal replay of ticks.raw, row for row | {"yes" if d.parts_equal_replay else "**no**"} | yes | {_met(d.parts_equal_replay)} |
| frame -> feature row readable, every row: p50 / p99 / max | {r.latency_p50_ms:.0f} / {r.latency_p99_ms:.0f} / {r.latency_max_ms:,.0f} ms | | |
| last feature row readable after the last frame was received | {r.catch_up_s:.2f} s | | |
| CPU used, share of one core | {cpu} | | |

Ingestor counters: {_n(ingest, "tickers")} tickers, {_n(ingest, "published")} published,
{_n(ingest, "spooled")} spooled, {_n(ingest, "spool_pending")} left in the journal,
{_n(ingest, "rejected")} rejected, {_n(ingest, "reconnects")} reconnects,
{_n(ingest, "sequence_gaps")} sequence gaps. Featurizer: {_n(summary, "accepted")} ticks accepted,
{_n(summary, "late")} late, {_n(summary, "duplicates")} duplicates, {_n(summary, "segments")} segments.

Resident memory (MB), sampled every 10 s while the market played, after a {r.warmup_s:.0f} s warm-up
(imports, caches and buffers filling); the slope is a least-squares fit over those samples.
Tolerance: {MB_PER_10_MIN_TOLERANCE:g} MB per 10 minutes, about 0.7 GB a day, beyond which a
process would need restarts; it is judged only over at least {MIN_JUDGED_S / 60:g} minutes of samples.
The broker's figure is the JVM's (heap -Xms256m -Xmx768m); its committed heap (`jstat -gc`, every
minute) shows how much of that is the heap G1 grows toward -Xmx before it collects the old
generation{_old_gen(r)}.

| process | after warm-up | end | max | slope MB / 10 min | target | met |
|---|---|---|---|---|---|---|
{memory_rows}

Rerun: `python scripts/bench_soak.py --minutes 30 --speed 20` (the last step of `make bench`;
`--minutes 2` to try it).
"""


if __name__ == "__main__":
    sys.exit(main())
