"""ws_ingest.py against a fake Coinbase server with injected faults and a real local broker."""

from __future__ import annotations

import base64

import orjson
import pytest

from streaming.market import Plan
from streaming_helpers import consume_values, ingest_args, mirrored_records, wait_until

pytestmark = pytest.mark.integration


def test_faults_are_survived_counted_and_nothing_sent_is_lost(coinbase, broker, spawn, tmp_path, frames):
    plans = [
        Plan(refuse=True),  # the first connection is refused
        Plan(count=1500, faults={200: "skip_sequence", 400: "garbage", 600: "skip_heartbeat"}, end="drop"),
        Plan(count=1500, end="silence"),  # the socket stays open, nothing comes: the watchdog fires
        Plan(),  # the rest, then heartbeats only
    ]
    server = coinbase(plans)
    ingest = spawn("ingest", ingest_args(server.url, broker.bootstrap, tmp_path))
    raw_dir = tmp_path / "raw"

    wait_until(server.all_sent.is_set, 60, "the server to send every frame")
    wait_until(lambda: len(mirrored_records(raw_dir)) >= len(frames), 30, "every frame in the mirror")
    assert ingest.stop() == 0, ingest.stderr()[-3000:]
    counters = ingest.last_json()

    # Every connection that was not refused subscribed to both channels, with the right product.
    opened = [c for c in server.connections if not c.refused]
    assert len(opened) == 3
    for connection in opened:
        assert connection.errors == []
        assert sorted(m["channel"] for m in connection.subscriptions) == ["heartbeats", "ticker"]
    assert counters["connections"] == 3
    assert counters["reconnects"] == 3  # after the refusal, the drop and the silence
    assert counters["watchdog_timeouts"] == 1
    assert counters["sequence_gaps"] == 1
    assert counters["heartbeat_gaps"] == 1
    assert counters["rejected"] == 1
    assert counters["tickers"] == len(server.sent_tickers) == len(frames)
    assert counters["published"] == len(frames)
    assert counters["spool_pending"] == 0

    # Every ticker frame sent reached the mirror and ticks.raw, verbatim and in order.
    sent = [orjson.loads(text) for text in server.sent_tickers]
    mirrored = mirrored_records(raw_dir)
    assert [r["frame"] for r in mirrored] == sent
    in_kafka = consume_values(broker.bootstrap, "ticks.raw", len(sent))
    assert {key for _, _, key, _ in in_kafka} == {b"BTC-USD"}
    assert [orjson.loads(value) for *_, value in sorted(in_kafka)] == mirrored

    # The first record after each gap carries it, and only those do.
    gaps = {i: r["gap"] for i, r in enumerate(mirrored) if "gap" in r}
    assert gaps == {0: "start", 200: "sequence", 600: "heartbeat", 1500: "reconnect", 3000: "reconnect"}

    # The garbage frame went to the DLQ with its reason and its exact bytes.
    dlq = consume_values(broker.bootstrap, "ticks.dlq", 1)
    assert len(dlq) == 1
    record = orjson.loads(dlq[0][3])
    assert record["reason"] == "invalid_json"
    assert base64.b64decode(record["original_b64"]) == b"this is not JSON {"


def test_without_kafka_everything_goes_to_the_mirror(coinbase, spawn, tmp_path, frames):
    subset = frames[:300]
    server = coinbase([Plan(end="drop"), Plan()], subset=subset)
    ingest = spawn("ingest", ingest_args(server.url, None, tmp_path))
    wait_until(server.all_sent.is_set, 30, "the server to send every frame")
    wait_until(lambda: len(mirrored_records(tmp_path / "raw")) >= len(subset), 30, "every frame in the mirror")
    assert ingest.stop() == 0
    counters = ingest.last_json()
    assert counters["mirrored"] == counters["tickers"] == len(subset)
    assert counters["published"] == 0 and counters["spooled"] == 0
    assert [r["frame"] for r in mirrored_records(tmp_path / "raw")] == [orjson.loads(t) for t in server.sent_tickers]


@pytest.mark.parametrize("args, message", [
    (["--pair", "BTCUSD"], "is not a product id"),
    (["--minutes", "-1"], "--minutes must be 0 (until stopped) or positive"),
    (["--ws-url", "http://example.invalid"], "is not a WebSocket URL"),
])
def test_bad_arguments_exit_with_one_clear_line(spawn, args, message):
    proc = spawn("bad", ["scripts/ws_ingest.py", "--no-kafka", *args])
    assert proc.wait(30) == 2
    lines = proc.stderr().strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
