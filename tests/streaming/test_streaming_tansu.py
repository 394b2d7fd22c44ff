"""The demo path on the zero-setup Tansu broker: ingest, featurize, rows equal replay.

Tansu (memory storage) is the default of `make kafka` and `make demo`, not the reference broker:
every fault test runs on Apache Kafka. This smoke test keeps the demo path honest on Tansu.
"""

from __future__ import annotations

import pandas as pd
import pytest

from streaming.market import Plan
from streaming_helpers import (
    count_part_rows,
    featurizer_args,
    ingest_args,
    mirrored_records,
    read_parts,
    replay_mirror,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_demo_path_on_tansu(coinbase, tansu_broker, spawn, tmp_path, frames):
    subset = frames[:1500]
    server = coinbase([Plan()], subset=subset)
    out_dir, raw_dir = tmp_path / "stream", tmp_path / "raw"
    ingest = spawn("ingest", ingest_args(server.url, tansu_broker.bootstrap, tmp_path))
    featurizer = spawn("featurizer", featurizer_args(tansu_broker.bootstrap, out_dir))
    wait_until(server.all_sent.is_set, 60, "the server to send every frame")
    wait_until(lambda: len(mirrored_records(raw_dir)) >= len(subset), 30, "every frame in the mirror")
    assert ingest.stop() == 0, ingest.stderr()[-3000:]
    assert ingest.last_json()["published"] == len(subset)
    expected = replay_mirror(raw_dir)
    wait_until(lambda: count_part_rows(out_dir) >= len(expected), 60, "the featurizer to catch up")
    assert featurizer.stop() == 0, featurizer.stderr()[-3000:]
    pd.testing.assert_frame_equal(read_parts(out_dir), expected, check_exact=True)
