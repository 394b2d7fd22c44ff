"""The fault matrix, on Apache Kafka: the broker, the ingestor and the featurizer fail mid-stream.

Each case plays the recording through ws_ingest.py and the featurizer and asserts two things:
every ticker frame the ingestor read reaches ``ticks.raw`` exactly once after exact repeats are
dropped (delivery is at least once), and the featurizer's Parquet parts equal, row for row, what
replay computes from those raw records.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import orjson
import pandas as pd
import pytest

from streaming.market import Plan
from streaming_helpers import (
    count_part_rows,
    distinct_values,
    featurizer_args,
    ingest_args,
    mirrored_records,
    read_parts,
    read_topic,
    replay_values,
    wait_until,
)

pytestmark = pytest.mark.integration

PACE_S = 0.004  # about 25 s for the recording: faults land mid-stream


def _start(coinbase, broker, spawn, tmp_path, plans, featurizer=True):
    server = coinbase(plans)
    out_dir = tmp_path / "stream"
    feat = spawn("featurizer", featurizer_args(broker.bootstrap, out_dir)) if featurizer else None
    ingest = spawn("ingest", ingest_args(server.url, broker.bootstrap, tmp_path, minutes=5))
    return server, feat, ingest, out_dir


def _raw_frames(broker, at_least: int) -> tuple[list[bytes], list[tuple]]:
    records = read_topic(broker.bootstrap, "ticks.raw", at_least=at_least, timeout_s=90)
    return distinct_values(records), records


def _frames_of(values: list[bytes]) -> list[bytes]:
    return [orjson.dumps(orjson.loads(v)["frame"]) for v in values]


def _assert_every_frame_once(server, values: list[bytes], missing_allowed: set[bytes] = frozenset()) -> None:
    """Every frame sent is in ticks.raw once, each product's in the order sent, but those the test allows to lose."""
    sent = [orjson.dumps(orjson.loads(t)) for t in server.sent_tickers]
    delivered = _frames_of(values)
    assert len(delivered) == len(set(delivered)), "a frame is in ticks.raw twice under different receive records"
    assert set(delivered) <= set(sent), "ticks.raw holds a frame that was never sent"
    missing = [f for f in sent if f not in set(delivered)]
    assert set(missing) <= missing_allowed, f"{len(set(missing) - missing_allowed)} frames never reached ticks.raw"
    for product in {_product(f) for f in sent}:  # a product's frames keep their order (one partition each)
        assert [f for f in delivered if _product(f) == product] == \
            [f for f in sent if _product(f) == product and f not in set(missing)], f"{product} out of order"


def _product(frame: bytes) -> str:
    return orjson.loads(frame)["events"][0]["tickers"][0]["product_id"]


def _assert_rows_equal_replay(feat, out_dir, values, tmp_path) -> None:
    expected = replay_values(values, tmp_path / "expected")
    wait_until(lambda: count_part_rows(out_dir) >= len(expected), 120, "the featurizer to catch up")
    assert feat.stop() == 0, feat.stderr()[-3000:]
    pd.testing.assert_frame_equal(read_parts(out_dir), expected, check_exact=True)


def _finish_ingest(server, ingest, raw_dir, total):
    wait_until(server.all_sent.is_set, 120, "the server to send every frame")
    wait_until(lambda: len(mirrored_records(raw_dir)) >= total, 60, "every frame in the mirror")
    assert ingest.stop() == 0, ingest.stderr()[-3000:]
    counters = ingest.last_json()
    assert counters["spool_pending"] == 0, counters
    return counters


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_broker_down_then_back_with_its_data(how, coinbase, broker, spawn, tmp_path, frames):
    """Stopped for 20 s (a controlled shutdown), or killed and restarted at once: nothing is lost."""
    server, feat, ingest, out_dir = _start(coinbase, broker, spawn, tmp_path, [Plan(pace_s=PACE_S)])
    raw_dir = tmp_path / "raw"
    wait_until(lambda: len(mirrored_records(raw_dir)) >= 1000, 60, "the first frames")
    if how == "stop":
        broker.stop()
        wait_until(lambda: "unreachable" in ingest.stderr(), 60, "the ingestor to notice the outage")
        threading.Event().wait(max(0.0, 20.0))
    else:
        broker.kill()
    broker.start()
    counters = _finish_ingest(server, ingest, raw_dir, len(frames))
    assert counters["tickers"] == len(frames) and counters["published"] >= len(frames), counters
    if how == "stop":
        assert counters["spooled"] > 0, counters  # records waited in the journal while the broker was down

    values, _ = _raw_frames(broker, len(frames))
    _assert_every_frame_once(server, values)
    _assert_rows_equal_replay(feat, out_dir, values, tmp_path)


def test_ingestor_killed_loses_only_what_it_never_read(coinbase, broker, spawn, tmp_path, frames):
    """kill -9 mid-stream, then a new ingestor: every frame the killed one read is delivered (from
    its journal); only frames still in the socket when it died may be missing."""
    server = coinbase([Plan(pace_s=PACE_S, count=2500, end="hold"), Plan(pace_s=PACE_S)])
    out_dir, raw_dir = tmp_path / "stream", tmp_path / "raw"
    feat = spawn("featurizer", featurizer_args(broker.bootstrap, out_dir))
    first = spawn("ingest-1", ingest_args(server.url, broker.bootstrap, tmp_path, minutes=5))
    wait_until(lambda: len(mirrored_records(raw_dir)) >= 1500, 60, "the first frames")
    first.signal(signal.SIGKILL)
    first.wait(10)
    read_by_first = {orjson.dumps(r["frame"]) for r in mirrored_records(raw_dir)}
    second = spawn("ingest-2", ingest_args(server.url, broker.bootstrap, tmp_path, minutes=5))
    _finish_ingest(server, second, raw_dir, 0)

    values, _ = _raw_frames(broker, len(frames) - 1000)
    delivered = set(_frames_of(values))
    sent = [orjson.dumps(orjson.loads(t)) for t in server.sent_tickers]
    to_first = set(sent[:server.connections[0].tickers_sent])
    assert read_by_first <= delivered, "a frame the killed ingestor had read never reached ticks.raw"
    lost = [f for f in sent if f not in delivered]
    _assert_every_frame_once(server, values, missing_allowed=to_first - read_by_first)
    print(f"ingestor kill -9: {len(lost)} of {len(sent)} frames lost, all sent to the dead socket after the "
          f"last one it read; all {len(read_by_first)} it had read delivered")
    _assert_rows_equal_replay(feat, out_dir, values, tmp_path)


def test_hostile_frames_are_rejected_counted_and_nothing_good_is_lost(coinbase, broker, spawn, tmp_path, frames):
    hostile = {100: "oversize", 200: "big_garbage", 300: "events_not_a_list", 400: "subscriptions_odd",
               500: "ticker_without_tickers", 600: "garbage"}
    server, feat, ingest, out_dir = _start(coinbase, broker, spawn, tmp_path, [Plan(faults=hostile)])
    counters = _finish_ingest(server, ingest, tmp_path / "raw", len(frames))
    assert counters["rejections"] == {"oversize": 1, "invalid_json": 2, "no_tickers": 2}, counters
    assert counters["published"] == counters["tickers"] == len(frames), counters

    dlq = [orjson.loads(v) for *_, v in read_topic(broker.bootstrap, "ticks.dlq", at_least=5)]
    by_reason = {}
    for record in dlq:
        by_reason.setdefault(record["reason"], []).append(record)
    (oversize,) = by_reason["oversize"]
    assert oversize["original_size"] > 1_000_000 and oversize["original_truncated"]
    assert sorted(r["original_size"] for r in by_reason["invalid_json"]) == [18, 900_000]

    values, _ = _raw_frames(broker, len(frames))
    _assert_every_frame_once(server, values)
    _assert_rows_equal_replay(feat, out_dir, values, tmp_path)


def test_two_featurizers_one_killed_the_other_takes_over_with_its_state(coinbase, broker, spawn, tmp_path,
                                                                         three_products):
    """Failover: BTC-USD, ETH-USD and SOL-USD over 3 partitions (BTC on one, ETH and SOL on another),
    two featurizers in one group; kill -9 one mid-stream and the other carries on from its
    checkpoints: the union of their parts equals replay, no row missing, none repeated, none different."""
    server = coinbase([Plan(pace_s=PACE_S)], subset=three_products)
    out_dir, raw_dir = tmp_path / "stream", tmp_path / "raw"
    victim = spawn("featurizer-1", featurizer_args(broker.bootstrap, out_dir))
    wait_until(lambda: "assigned [0, 1, 2]" in victim.stderr(), 60, "the first featurizer to join")
    survivor = spawn("featurizer-2", featurizer_args(broker.bootstrap, out_dir))
    ingest = spawn("ingest", ingest_args(server.url, broker.bootstrap, tmp_path, minutes=5,
                                         pairs=("BTC-USD", "ETH-USD", "SOL-USD")))
    # With two members each holds a partition with data (range assignment: [0, 1] and [2]).
    wait_until(lambda: _assigned(survivor) not in (None, [], [0, 1, 2]), 60, "the group to split the partitions")
    wait_until(lambda: len(list(out_dir.glob("checkpoint-p*.pkl"))) >= 2, 60, "checkpoints of both data partitions")
    victim.signal(signal.SIGKILL)
    victim.wait(10)
    assert not server.all_sent.is_set(), "the stream ended before the kill: slow the server down"
    wait_until(lambda: _assigned(survivor) == [0, 1, 2], 60, "the survivor to take every partition")
    assert "restored the state" in survivor.stderr()
    counters = _finish_ingest(server, ingest, raw_dir, len(three_products))
    assert counters["published"] == len(three_products), counters

    values, _ = _raw_frames(broker, len(three_products))
    _assert_every_frame_once(server, values)
    _assert_rows_equal_replay(survivor, out_dir, values, tmp_path)
    rows = read_parts(out_dir)
    assert set(rows["product_id"]) == {"BTC-USD", "ETH-USD", "SOL-USD"}


def _assigned(proc) -> list[int] | None:
    """The partitions the featurizer said it holds last (None before it said anything)."""
    lines = [line for line in proc.stderr().splitlines() if "assigned [" in line]
    return orjson.loads(lines[-1][lines[-1].index("assigned [") + 9:]) if lines else None


def test_featurizer_producer_process_killed_is_replaced_and_no_row_is_lost(coinbase, broker, spawn, tmp_path,
                                                                           frames):
    """The featurizer's producer runs in a child process: kill -9 it mid-stream; the featurizer
    starts another and sends again what was not confirmed, so ticks.features has every row."""
    server, feat, ingest, out_dir = _start(coinbase, broker, spawn, tmp_path, [Plan(pace_s=PACE_S)])
    wait_until(lambda: count_part_rows(out_dir) >= 1000, 60, "the first rows")
    children = Path(f"/proc/{feat.popen.pid}/task/{feat.popen.pid}/children").read_text().split()
    (producer,) = [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(int(producer), signal.SIGKILL)
    _finish_ingest(server, ingest, tmp_path / "raw", len(frames))
    values, _ = _raw_frames(broker, len(frames))
    _assert_rows_equal_replay(feat, out_dir, values, tmp_path)
    assert "starting another" in feat.stderr()
    published = {orjson.loads(v)["ts"] for *_, v in read_topic(broker.bootstrap, "ticks.features", at_least=len(frames))}
    assert published == set(read_parts(out_dir)["ts"].astype("int64"))
