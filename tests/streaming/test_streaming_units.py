"""Pure pieces of the live pipeline, without network: gap tracking, files, checkpoints."""

from __future__ import annotations

import base64
import pickle
import subprocess
import sys

import orjson
import pytest

from features.online import FeatureSpec
from features.pipeline import Summary
from features.ticks import raw_record
from streaming.checkpoint import (FeaturizerError, PartitionCheckpoint, PartitionLock, RecentRecords, checkpoint_path,
                                  load_checkpoint, write_atomically)
from streaming.featurizer import received_at
from streaming.watch import Offsets, StallWatch
from streaming.ingest import Counters, FrameHandler, subscribe_messages
from streaming.sinks import RotatingMirror

NS = 1_775_428_513_000_000_000


def ticker(seq: int, *products: str) -> bytes:
    tickers = [{"type": "ticker", "product_id": p, "price": "1", "best_bid": "1", "best_ask": "2"} for p in products]
    return orjson.dumps({"channel": "ticker", "timestamp": "2026-04-05T22:35:14.009945409Z", "sequence_num": seq,
                         "events": [{"type": "update", "tickers": tickers}]})


def heartbeat(seq: int, counter: int | str) -> bytes:
    return orjson.dumps({"channel": "heartbeats", "timestamp": "2026-04-05T22:35:14Z", "sequence_num": seq,
                         "events": [{"current_time": "now", "heartbeat_counter": counter}]})


def gaps(outgoing) -> list:
    return [orjson.loads(o.value).get("gap") for o in outgoing if o.topic_role == "raw"]


def test_subscribe_messages_are_one_per_channel_without_credentials():
    messages = [orjson.loads(m) for m in subscribe_messages(("BTC-USD", "ETH-USD"))]
    assert messages == [
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "ticker"},
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "heartbeats"},
    ]


def test_gaps_mark_the_next_record_of_every_product_once():
    counters = Counters()
    handler = FrameHandler(("BTC-USD", "ETH-USD"), counters)
    handler.connection_started(first=True)
    out = handler.handle(ticker(1, "BTC-USD"), NS) + handler.handle(ticker(2, "BTC-USD"), NS)
    assert gaps(out) == ["start", None]
    out = handler.handle(ticker(5, "ETH-USD"), NS)  # 3 and 4 missing: a sequence gap, but ETH's start is older
    assert gaps(out) == ["start"] and counters.sequence_gaps == 1
    out = handler.handle(ticker(6, "BTC-USD"), NS) + handler.handle(ticker(7, "ETH-USD"), NS)
    assert gaps(out) == ["sequence", None]
    handler.handle(heartbeat(8, "10"), NS)
    handler.handle(heartbeat(9, 12), NS)  # counter 11 missing
    assert counters.heartbeat_gaps == 1 and counters.heartbeats == 2
    out = handler.handle(ticker(10, "BTC-USD", "ETH-USD"), NS)
    assert gaps(out) == ["heartbeat"]
    assert out[0].key == b"BTC-USD"
    handler.connection_started(first=False)
    assert gaps(handler.handle(ticker(0, "ETH-USD"), NS)) == ["reconnect"]  # numbering restarts per connection
    assert counters.sequence_gaps == 1 and counters.tickers == 7


def test_bad_frames_go_to_the_dlq_with_their_bytes():
    counters = Counters()
    handler = FrameHandler(("BTC-USD",), counters)
    handler.connection_started(first=True)
    garbage = b"\xff\xfe not json"
    (dlq,) = handler.handle(garbage, NS)
    record = orjson.loads(dlq.value)
    assert dlq.topic_role == "dlq" and record["reason"] == "invalid_json" and record["source"] == "ws_ingest"
    assert base64.b64decode(record["original_b64"]) == garbage
    (error,) = handler.handle(b'{"type": "error", "message": "failure to subscribe"}', NS)
    assert orjson.loads(error.value)["reason"] == "server_error"
    assert handler.handle(b'[1, 2]', NS)[0].topic_role == "dlq"
    assert handler.handle(b'{"channel": "subscriptions", "events": []}', NS) == []
    assert counters.rejected == 3 and counters.other_frames == {"subscriptions": 1} and counters.frames == 4


def test_mirror_rotates_and_names_sort_in_write_order(tmp_path):
    mirror = RotatingMirror(tmp_path, rotate_bytes=100)
    lines = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * 40) for i in range(10)]
    for line in lines:
        mirror.write(line)
    mirror.close()
    files = sorted(tmp_path.glob("raw-*.ndjson"))
    assert len(files) == 5 and files == mirror.files
    assert b"".join(p.read_bytes() for p in files).splitlines() == lines


def test_received_at_is_read_from_the_raw_record_prefix():
    record = raw_record('{"channel":"ticker"}', NS, "reconnect")
    assert received_at(record) == orjson.loads(record)["received_at"]
    assert received_at(b'{"channel":"ticker"}') is None


def test_checkpoint_round_trip_and_refusal_of_other_settings(tmp_path):
    spec = FeatureSpec()
    checkpoint = PartitionCheckpoint(spec, "ticks.raw", "id-1", 2, 41, {}, Summary(lines=7), 3)
    write_atomically(checkpoint_path(tmp_path, 2), pickle.dumps(checkpoint))
    restored = load_checkpoint(tmp_path, spec, "ticks.raw", 2)
    assert restored is not None and restored.summary.lines == 7 and restored.next_part == 3 and restored.offset == 41
    with pytest.raises(FeaturizerError, match="use another --group"):
        load_checkpoint(tmp_path, FeatureSpec(windows_s=(10.0,)), "ticks.raw", 2)
    assert load_checkpoint(tmp_path, spec, "ticks.raw", 0) is None


def test_a_partition_lock_is_held_by_one_process_at_a_time(tmp_path):
    code = ("import sys, time; from pathlib import Path; from streaming.checkpoint import PartitionLock; "
            "lock = PartitionLock(Path(sys.argv[1]), 0); print(lock.acquire(), flush=True); time.sleep(30)")
    other = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "True"
        mine = PartitionLock(tmp_path, 0)
        assert not mine.acquire()  # the other process holds it
        assert PartitionLock(tmp_path, 1).acquire()  # another partition is free
        other.kill()  # kill -9 releases it
        other.wait(10)
        assert mine.acquire() and mine.held
        mine.release()
    finally:
        other.kill()


def test_the_stall_watch_fires_only_on_lag_without_progress():
    watch = StallWatch(stall_s=30)
    ends = Offsets(ends={0: 100, 1: 50}, committed={})
    assert watch.observe(0, {0: 100, 1: 50}, ends) == 0  # caught up
    assert watch.observe(10, {0: 90, 1: 50}, ends) == 0  # lag, and it moved
    assert watch.observe(25, {0: 90, 1: 50}, ends) == 0  # no progress for 15 s
    assert watch.observe(41, {0: 90, 1: 50}, ends) == 10  # no progress for 31 s: stalled
    assert watch.observe(42, {0: 95, 1: 50}, ends) == 0  # progress resets it


def test_an_idle_member_watches_the_group():
    watch = StallWatch(stall_s=30)
    assert watch.observe(0, {}, Offsets({0: 100}, {0: 60})) == 0
    assert watch.observe(20, {}, Offsets({0: 110}, {0: 80})) == 0  # the others commit: fine
    assert watch.observe(40, {}, Offsets({0: 120}, {0: 80})) == 0
    assert watch.observe(51, {}, Offsets({0: 120}, {0: 80})) == 40  # nobody moved for 31 s
    assert watch.observe(60, {}, Offsets({0: 80}, {0: 80})) == 0  # no lag, no stall


def test_recent_records_drop_exact_repeats_within_the_window_and_survive_a_checkpoint():
    recent = RecentRecords(size=3)
    assert [recent.repeat(v) for v in (b"a", b"b", b"a", b"c")] == [False, False, True, False]
    restored = RecentRecords(size=3, digests=recent.dump())
    assert restored.repeat(b"c") and restored.repeat(b"b")
    assert not restored.repeat(b"d")  # pushes "a" out of the window
    assert not restored.repeat(b"a")


class _Future:
    def __init__(self, done: bool) -> None:
        self.is_done = done

    def failed(self) -> bool:
        return False


class _StubProducer:
    """A producer whose records are acknowledged at once, or never (stuck, as after expired batches)."""

    def __init__(self, delivers: bool) -> None:
        self.delivers, self.sent, self.closed = delivers, [], False

    def send(self, topic, key, value, partition):
        self.sent.append(value)
        return _Future(self.delivers)

    def flush(self, timeout):
        pass


def test_a_producer_that_stops_delivering_is_replaced_and_its_records_sent_again_in_order(monkeypatch):
    from streaming import producer_process

    producers = [_StubProducer(delivers=False), _StubProducer(delivers=True)]
    made = iter(producers)
    monkeypatch.setattr(producer_process, "ensure_topics", lambda bootstrap, topics: None)
    monkeypatch.setattr(producer_process, "make_producer", lambda bootstrap, **options: next(made))
    monkeypatch.setattr(producer_process, "KeyPartitioner", lambda producer, topic: lambda key: 0)
    monkeypatch.setattr(producer_process, "close_quietly",
                        lambda clients: [setattr(c, "closed", True) for c in clients if c is not None])
    monkeypatch.setattr(producer_process.time, "sleep", lambda s: None)
    sender = producer_process._Sender("127.0.0.1:1", {"t": 1}, {})

    sender.send([("t", b"k", b"1"), ("t", b"k", b"2")])
    assert not sender.flush(timeout_s=0.2)  # nothing acknowledged: the stuck producer is dropped
    assert producers[0].closed and sender.producer is None
    sender.send([("t", b"k", b"3")])  # queued behind the two it must send again
    assert sender.flush(timeout_s=5.0)
    assert producers[1].sent == [b"1", b"2", b"3"] and not sender.pending
