"""The ingestor's pieces without a broker: the journal, the frame handler on hostile input, the publisher offline."""

from __future__ import annotations

import base64
import threading

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.kafka import DLQ_ORIGINAL_BYTES
from streaming.ingest import MAX_FRAME_BYTES, Counters, FrameHandler
from streaming.journal import COMPACT_BYTES, Journal, JournalBusy
from streaming.publisher import Publisher
from testkit import free_port

NS = 1_775_428_513_000_000_000
TICKER = (b'{"channel":"ticker","timestamp":"2026-04-05T22:35:14.009945409Z","sequence_num":1,"events":[{"type":'
          b'"update","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"1","best_bid":"1","best_ask":"2"}]}]}')


def record(i: int) -> bytes:
    return b'{"i":%d}' % i


def test_journal_keeps_what_kafka_did_not_acknowledge_across_a_restart(tmp_path):
    path = tmp_path / "ingest.journal"
    journal = Journal(path, mark_every_s=0)
    entries = [journal.append("ticks.raw", b"BTC-USD", record(i)) for i in range(5)]
    journal.append("ticks.dlq", None, record(99))
    journal.ack(entries[2])  # Kafka took the first three
    journal.close()
    with open(path, "ab") as handle:
        handle.write(b"ticks.raw\tBTC-USD\t{\"i\":")  # killed in the middle of a write
    again = Journal(path)
    left = [(e.topic, e.key, e.value) for e in again.unacked(1 << 20)]
    assert left == [("ticks.raw", b"BTC-USD", record(3)), ("ticks.raw", b"BTC-USD", record(4)),
                    ("ticks.dlq", None, record(99))]
    assert again.pending_records() == 3
    assert not path.read_bytes().endswith(b":")  # the torn record was never sent: dropped


def test_journal_is_emptied_only_once_everything_is_acknowledged(tmp_path):
    journal = Journal(tmp_path / "j", mark_every_s=0)
    value = b"x" * 1000
    entries = [journal.append("t", b"k", value) for _ in range(COMPACT_BYTES // 1000 + 10)]
    journal.ack(entries[-2])
    assert not journal.compact() and journal.pending_records() == 1
    journal.ack(entries[-1])
    assert journal.compact() and journal.size == 0 and journal.pending_bytes == 0
    assert journal.is_done(entries[-1])  # from the emptied generation
    fresh = journal.append("t", b"k", b"new")
    assert not journal.is_done(fresh) and [e.value for e in journal.unacked(1 << 20)] == [b"new"]
    journal.close()
    assert [e.value for e in Journal(tmp_path / "j").unacked(1 << 20)] == [b"new"]


def test_one_ingestor_per_journal(tmp_path):
    journal = Journal(tmp_path / "j")
    with pytest.raises(JournalBusy, match="another ingestor"):
        Journal(tmp_path / "j")
    journal.close()


def test_journal_refuses_a_record_that_would_span_lines(tmp_path):
    journal = Journal(tmp_path / "j")
    with pytest.raises(ValueError):
        journal.append("t", b"k", b"two\nlines")
    journal.close()


def test_publisher_without_broker_keeps_everything_journaled_in_order(tmp_path):
    journal = Journal(tmp_path / "j")
    publisher = Publisher(f"127.0.0.1:{free_port()}", {"ticks.raw": 1}, journal, "ticks.dlq", retry_s=0.05)
    publisher.start()
    for i in range(5):
        publisher.submit("ticks.raw", b"BTC-USD", record(i))
    publisher.close(timeout_s=1)
    assert publisher.stats.acked == {} and not publisher.online
    assert [e.value for e in Journal(tmp_path / "j").unacked(1 << 20)] == [record(i) for i in range(5)]


# -- the frame handler on hostile input ------------------------------------------------------

def handler() -> FrameHandler:
    h = FrameHandler(("BTC-USD",), Counters())
    h.connection_started(first=True)
    return h


@pytest.mark.parametrize("frame, reason", [
    (b'{"channel":"ticker","events":5}', "no_tickers"),
    (b'{"channel":"ticker","events":[{"tickers":{"a":1}}]}', "no_tickers"),
    (b'{"channel":"ticker","events":[{"tickers":[{"product_id":"BTC\\tUSD"}]}]}', "no_tickers"),
    (b'"just a string"', "invalid_json"),
    (b"\xff\xfe not json", "invalid_json"),
])
def test_malformed_frames_are_rejected_and_counted(frame, reason):
    h = handler()
    (out,) = h.handle(frame, NS)
    dlq = orjson.loads(out.value)
    assert out.topic_role == "dlq" and dlq["reason"] == reason
    assert base64.b64decode(dlq["original_b64"]) == frame and dlq["original_size"] == len(frame)
    assert h.counters.rejections == {reason: 1}


@pytest.mark.parametrize("frame", [
    b'{"channel":"subscriptions","events":{"a":1}}',
    b'{"channel":"heartbeats","events":[{"heartbeat_counter":[1]}, 7, {"heartbeat_counter":"x"}]}',
    b'{"channel":{"nested":true},"sequence_num":"7"}',
])
def test_odd_frames_of_other_channels_are_counted_not_fatal(frame):
    h = handler()
    assert h.handle(frame, NS) == [] and h.counters.frames == 1


def test_an_oversize_frame_goes_to_the_dlq_with_its_size_and_a_bounded_prefix():
    h = handler()
    big = TICKER[:-3] + b"," + b'"pad":"' + b"x" * MAX_FRAME_BYTES + b'"}]}'
    (out,) = h.handle(big, NS)
    dlq = orjson.loads(out.value)
    assert dlq["reason"] == "oversize" and dlq["original_size"] == len(big) and dlq["original_truncated"]
    assert base64.b64decode(dlq["original_b64"]) == big[:DLQ_ORIGINAL_BYTES]
    assert len(out.value) < 64_000
    (ok,) = h.handle(TICKER, NS)  # and the next good frame goes through
    assert ok.topic_role == "raw" and ok.key == b"BTC-USD"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["channel", "events", "tickers", "product_id", "sequence_num", "heartbeat_counter",
                         "type", "message", "subscriptions", "price", "best_bid", "best_ask", "x"]),
        inner, max_size=5),
    max_leaves=25)
channels = st.sampled_from(["ticker", "heartbeats", "subscriptions", "error", None, 3])


@settings(max_examples=400, deadline=None)
@given(value=json_values, channel=channels)
def test_any_json_value_is_classified_without_raising(value, channel):
    h = handler()
    frame = dict(value) if isinstance(value, dict) else {"events": value}
    if channel is not None:
        frame["channel"] = channel
    for data in (orjson.dumps(value), orjson.dumps(frame)):
        out = h.handle(data, NS)
        assert len(out) <= 1
        for o in out:
            orjson.loads(o.value)  # whatever comes out is a valid record
            if o.topic_role == "raw":
                assert o.key and b"\t" not in o.key


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_bytes_are_classified_without_raising(data):
    h = handler()
    out = h.handle(data, NS)
    assert len(out) <= 1 and h.counters.frames == 1


def test_the_handler_is_safe_to_feed_from_one_thread_while_another_reads_counters():
    h = handler()
    reader = threading.Thread(target=lambda: [dict(h.counters.rejections) for _ in range(1000)])
    reader.start()
    for _ in range(1000):
        h.handle(b"garbage", NS)
    reader.join()
    assert h.counters.rejections == {"invalid_json": 1000}
