"""End to end on loopback: fake Coinbase -> ws_ingest.py -> broker -> featurizer.py -> Parquet.

The featurizer's rows must equal, exactly, what replay computes from the files ws_ingest.py
mirrored (the label column aside: a live row has no future yet).
"""

from __future__ import annotations

import signal

import pandas as pd
import pytest

from streaming.market import Plan
from streaming_helpers import (
    consume_values,
    count_part_rows,
    featurizer_args,
    ingest_args,
    mirrored_records,
    read_parts,
    replay_mirror,
    wait_until,
)

pytestmark = pytest.mark.integration


def _ingest_everything(coinbase, broker, spawn, tmp_path, frames, pace_s=0.0):
    """Play the recording (with one dropped connection) through ws_ingest.py; return the process."""
    server = coinbase([Plan(count=2500, end="drop", pace_s=pace_s), Plan(pace_s=pace_s)])
    ingest = spawn("ingest", ingest_args(server.url, broker.bootstrap, tmp_path))
    return server, ingest


def _finish_ingest(server, ingest, tmp_path, frames):
    wait_until(server.all_sent.is_set, 90, "the server to send every frame")
    wait_until(lambda: len(mirrored_records(tmp_path / "raw")) >= len(frames), 30, "every frame in the mirror")
    assert ingest.stop() == 0, ingest.stderr()[-3000:]
    counters = ingest.last_json()
    assert counters["published"] == counters["tickers"] == len(frames)


def test_live_rows_equal_replay_of_the_mirror(coinbase, broker, spawn, tmp_path, frames):
    out_dir = tmp_path / "stream"
    featurizer = spawn("featurizer", featurizer_args(broker.bootstrap, out_dir))
    server, ingest = _ingest_everything(coinbase, broker, spawn, tmp_path, frames)
    _finish_ingest(server, ingest, tmp_path, frames)

    expected = replay_mirror(tmp_path / "raw")
    assert expected["segment"].nunique() == 2  # the dropped connection started a segment
    wait_until(lambda: count_part_rows(out_dir) >= len(expected), 60, "the featurizer to catch up")
    assert featurizer.stop() == 0, featurizer.stderr()[-3000:]
    pd.testing.assert_frame_equal(read_parts(out_dir), expected, check_exact=True)

    # The same rows went to ticks.features, keyed by product, with int-ns times.
    published = consume_values(broker.bootstrap, "ticks.features", len(expected))
    assert len(published) == len(expected)
    assert {key for _, _, key, _ in published} == {b"BTC-USD"}
    report = featurizer.last_json()
    assert report["rows"] == len(expected) and report["summary"]["accepted"] == len(expected)


def test_killed_featurizer_resumes_and_rows_still_equal_replay(coinbase, broker, spawn, tmp_path, frames):
    out_dir = tmp_path / "stream"
    server, ingest = _ingest_everything(coinbase, broker, spawn, tmp_path, frames, pace_s=0.0005)
    first = spawn("featurizer-1", featurizer_args(broker.bootstrap, out_dir))
    # Kill it without warning once it has checkpointed a few times but before the stream ends.
    wait_until(lambda: len(list(out_dir.glob("part-*.parquet"))) >= 3, 60, "a few parts")
    assert not server.all_sent.is_set(), "the stream ended before the kill: slow the server down"
    first.signal(signal.SIGKILL)
    first.wait(10)
    second = spawn("featurizer-2", featurizer_args(broker.bootstrap, out_dir))
    _finish_ingest(server, ingest, tmp_path, frames)

    expected = replay_mirror(tmp_path / "raw")
    wait_until(lambda: count_part_rows(out_dir) >= len(expected), 60, "the restarted featurizer to catch up")
    assert second.stop() == 0, second.stderr()[-3000:]
    assert "restored the state" in second.stderr()
    pd.testing.assert_frame_equal(read_parts(out_dir), expected, check_exact=True)
