"""Every record shape and spelling the parser must read yields the right ticks.

Expected times come from pandas (an independent ISO-8601 parser with nanosecond precision).
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from features.pipeline import FeaturePipeline
from features.online import FeatureSpec
from features.ticks import Tick, parse_line, parse_time_ns, raw_record


def ns(text: str) -> int:
    """ns since epoch of an ISO time; naive means UTC."""
    stamp = pd.Timestamp(text)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.value


EXPECTED_FRAME_TICK = Tick(
    product_id="BTC-USD",
    ts_ns=ns("2026-04-05T22:35:13.92532762Z"),
    price=67468.26,
    best_bid=67468.26,
    best_ask=67469.62,
    best_bid_qty=0.00275905,
    best_ask_qty=0.17950856,
    volume_24h=3057.53218222,
    sequence_num=2,
)


# --- frames: bare, wrapped, and the project's own raw record --------------------------------


def test_bare_frame_yields_tick_stamped_with_exchange_time(rec):
    parsed = parse_line(rec.line(rec.frame()))
    assert parsed.ticks == [EXPECTED_FRAME_TICK]
    assert parsed.rejections == []
    assert parsed.skipped_channel is None
    assert parsed.new_segment is False
    assert parsed.received_ns is None


def test_frame_timestamp_keeps_nanoseconds(rec):
    parsed = parse_line(rec.line(rec.frame(timestamp="2026-04-05T22:35:14.009945409Z")))
    assert parsed.ticks[0].ts_ns % 1_000_000_000 == 9_945_409
    assert parsed.ticks[0].ts_ns == ns("2026-04-05T22:35:14.009945409Z")


def test_wrapped_frame_uses_payload_time_and_keeps_ingest_time(rec):
    wrapped = {"ingest_time": "2026-04-05T22:35:13.865365+00:00", "product_id": "BTC-USD",
               "payload": rec.frame()}
    parsed = parse_line(rec.line(wrapped))
    assert parsed.ticks == [EXPECTED_FRAME_TICK]
    assert parsed.received_ns == ns("2026-04-05T22:35:13.865365+00:00")
    assert parsed.new_segment is False


def test_raw_record_round_trips_frame_and_receive_time(rec):
    frame_text = json.dumps(rec.frame())
    received = ns("2026-04-05T22:35:13.900001Z")
    record = raw_record(frame_text, received)
    assert b"\n" not in record
    assert frame_text.encode() in record  # the frame is kept byte for byte
    parsed = parse_line(record)
    assert parsed.ticks == [EXPECTED_FRAME_TICK]
    assert parsed.received_ns == received
    assert parsed.new_segment is False


def test_raw_record_accepts_bytes_and_multiline_frames(rec):
    pretty = json.dumps(rec.frame(), indent=2).encode()
    record = raw_record(pretty, ns("2026-04-05T22:35:13.9Z"))
    assert record.count(b"\n") == 0
    assert parse_line(record).ticks == [EXPECTED_FRAME_TICK]


@pytest.mark.parametrize("gap", ["reconnect", "sequence", "heartbeat"])
def test_raw_record_gap_marks_new_segment(rec, gap):
    record = raw_record(json.dumps(rec.frame()), ns("2026-04-05T22:35:14Z"), gap=gap)
    assert json.loads(record)["gap"] == gap
    parsed = parse_line(record)
    assert parsed.new_segment is True
    assert parsed.ticks == [EXPECTED_FRAME_TICK]


def test_raw_record_without_gap_has_no_gap_key(rec):
    record = raw_record(json.dumps(rec.frame()), ns("2026-04-05T22:35:14Z"))
    assert "gap" not in json.loads(record)


# --- frames of other channels ----------------------------------------------------------------


HEARTBEAT = {"channel": "heartbeats", "client_id": "", "timestamp": "2026-04-05T22:35:14.1Z",
             "sequence_num": 3, "events": [{"current_time": "2026-04-05 22:35:14.1 +0000 UTC",
                                            "heartbeat_counter": 12}]}
SUBSCRIPTIONS = {"channel": "subscriptions", "client_id": "", "timestamp": "2026-04-05T22:35:13.9Z",
                 "sequence_num": 1, "events": [{"subscriptions": {"ticker": ["BTC-USD"]}}]}


@pytest.mark.parametrize("other", [HEARTBEAT, SUBSCRIPTIONS], ids=["heartbeats", "subscriptions"])
@pytest.mark.parametrize("shape", ["bare", "wrapped", "raw_record"])
def test_other_channels_are_skipped_not_rejected(other, shape):
    if shape == "bare":
        text = json.dumps(other).encode()
    elif shape == "wrapped":
        text = json.dumps({"ingest_time": "2026-04-05T22:35:14+00:00", "payload": other}).encode()
    else:
        text = raw_record(json.dumps(other), ns("2026-04-05T22:35:14Z"))
    parsed = parse_line(text)
    assert parsed.ticks == []
    assert parsed.rejections == []
    assert parsed.skipped_channel == other["channel"]


def test_pipeline_counts_skipped_frames_per_channel(rec):
    pipeline = FeaturePipeline(FeatureSpec())
    for obj in [SUBSCRIPTIONS, rec.frame(), HEARTBEAT, HEARTBEAT]:
        pipeline.process(rec.line(obj))
    summary = pipeline.summary
    assert dict(summary.skipped_frames) == {"subscriptions": 1, "heartbeats": 2}
    assert summary.lines == 4
    assert summary.accepted == 1
    assert sum(summary.rejected.values()) == 0


# --- several tickers in one frame ------------------------------------------------------------


def test_frame_with_several_tickers_yields_one_tick_each_in_order(rec):
    events = [
        {"type": "update", "tickers": [rec.ticker(product_id="BTC-USD"), rec.ticker(product_id="ETH-USD",
                                                                                  best_bid="3000", best_ask="3000.5",
                                                                                  price="3000.1")]},
        {"type": "update", "tickers": [rec.ticker(product_id="SOL-USD", best_bid="150", best_ask="150.02",
                                                  price="150.01")]},
    ]
    parsed = parse_line(rec.line(rec.frame(events=events, sequence_num=9)))
    assert parsed.rejections == []
    assert [t.product_id for t in parsed.ticks] == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert {t.ts_ns for t in parsed.ticks} == {EXPECTED_FRAME_TICK.ts_ns}
    assert {t.sequence_num for t in parsed.ticks} == {9}
    assert parsed.ticks[1].best_ask == 3000.5
    assert parsed.ticks[2].price == 150.01

    pipeline = FeaturePipeline(FeatureSpec())
    rows, rejections = pipeline.process(rec.line(rec.frame(events=events)))
    assert [row[0] for row in rows] == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert rejections == []
    assert pipeline.summary.accepted == 3


BAD_TICKERS = {
    "missing_product": {"product_id": None},
    "missing_field": {"best_bid": None},
    "bad_number": {"best_ask": "abc"},
    "bad_quote": {"best_bid": "NaN"},
    "crossed_book": {"best_bid": "67470", "best_ask": "67469"},
}


@pytest.mark.parametrize("reason", sorted(BAD_TICKERS))
def test_bad_ticker_among_good_ones_rejects_only_itself(rec, reason):
    overrides = {k: (rec.DROP if v is None else v) for k, v in BAD_TICKERS[reason].items()}
    tickers = [rec.ticker(product_id="BTC-USD"), rec.ticker(**{"product_id": "ETH-USD", **overrides}),
               rec.ticker(product_id="SOL-USD")]
    parsed = parse_line(rec.line(rec.frame(tickers)))
    assert [t.product_id for t in parsed.ticks] == ["BTC-USD", "SOL-USD"]
    assert [r.reason for r in parsed.rejections] == [reason]

    pipeline = FeaturePipeline(FeatureSpec())
    rows, rejections = pipeline.process(rec.line(rec.frame(tickers)))
    assert [row[0] for row in rows] == ["BTC-USD", "SOL-USD"]
    assert [r.reason for r in rejections] == [reason]
    assert dict(pipeline.summary.rejected) == {reason: 1}


# --- flat records: every key spelling, strings and JSON numbers -------------------------------


@pytest.mark.parametrize("time_key", ["timestamp", "ts", "ws_timestamp"])
@pytest.mark.parametrize("volume_key", ["volume_24h", "volume_24_h"])
@pytest.mark.parametrize("qty_keys", [("best_bid_qty", "best_ask_qty"),
                                      ("best_bid_quantity", "best_ask_quantity")])
@pytest.mark.parametrize("as_numbers", [False, True], ids=["strings", "json_numbers"])
def test_flat_record_key_spellings(rec, time_key, volume_key, qty_keys, as_numbers):
    values = {"price": 89387.88, "best_bid": 89388.37, "best_ask": 89390.0,
              volume_key: 8344.15909011, qty_keys[0]: 0.01949308, qty_keys[1]: 0.01916883}
    if not as_numbers:
        values = {k: repr(v) for k, v in values.items()}
    obj = {time_key: "2025-12-06T01:12:47.761914", "product_id": "BTC-USD", **values}
    parsed = parse_line(rec.line(obj))
    assert parsed.rejections == []
    assert parsed.ticks == [Tick("BTC-USD", ns("2025-12-06T01:12:47.761914"), 89387.88, 89388.37, 89390.0,
                                 0.01949308, 0.01916883, 8344.15909011, None)]


def test_flat_record_with_integer_json_numbers(rec):
    parsed = parse_line(rec.line(rec.flat(price=89390, best_bid=89389, best_ask=89391)))
    assert (parsed.ticks[0].price, parsed.ticks[0].best_bid, parsed.ticks[0].best_ask) == (89390.0, 89389.0, 89391.0)


def test_flat_record_as_recorded_takes_quantities_from_nested_raw(rec):
    """The real 2025-12 files: quantities only inside ``raw``, spelled ``best_*_quantity``."""
    obj = rec.flat(low_24h="88099.05", high_24h="92716.42",
                   raw={"type": "ticker", "product_id": "BTC-USD", "price": "89387.88",
                        "volume_24_h": "8344.15909011", "best_bid": "89388.37", "best_ask": "89390",
                        "best_bid_quantity": "0.01949308", "best_ask_quantity": "0.01916883"})
    parsed = parse_line(rec.line(obj))
    assert parsed.ticks == [Tick("BTC-USD", ns("2025-12-06T01:12:47.761914"), 89387.88, 89388.37, 89390.0,
                                 0.01949308, 0.01916883, 8344.15909011, None)]


def test_flat_record_without_quantities_has_none(rec):
    parsed = parse_line(rec.line(rec.flat(volume_24h=rec.DROP)))
    tick = parsed.ticks[0]
    assert (tick.best_bid_qty, tick.best_ask_qty, tick.volume_24h) == (None, None, None)


def test_strings_and_json_numbers_give_identical_ticks(rec):
    as_text = parse_line(rec.line(rec.flat(price="100.25", best_bid="100.2", best_ask="100.3")))
    as_numbers = parse_line(rec.line(rec.flat(price=100.25, best_bid=100.2, best_ask=100.3)))
    assert as_text.ticks == as_numbers.ticks


# --- times -----------------------------------------------------------------------------------

TIME_FORMS = [
    "2025-12-06T01:12:47",  # naive, whole seconds
    "2025-12-06T01:12:47.761914",  # naive, as the 2025-12 files
    "2025-12-06T01:12:47.761914Z",
    "2025-12-06T01:12:47.761914+00:00",
    "2025-12-06T01:12:47.5",
    "2025-12-06T01:12:47.12",
    "2025-12-06T01:12:47.1234567",
    "2025-12-06T01:12:47.92532762Z",  # 8 digits, as Advanced Trade sends
    "2025-12-06T01:12:47.123456789Z",
    "2025-12-06T01:12:47.123456789+00:00",
    "2025-12-06T01:12:47.123456789",
    "2025-12-06T01:12:47.000000001Z",
    "2025-12-06T03:12:47.123456789+02:00",
    "2025-12-05T20:12:47.123456789-05:00",
    "2025-12-06T01:12:47Z",
    "2025-12-06T01:12:47+00:00",
    "2025-12-06 01:12:47.761914",
]


@pytest.mark.parametrize("text", TIME_FORMS)
def test_time_forms_parse_to_the_nanosecond(text):
    assert parse_time_ns(text) == ns(text)


@pytest.mark.parametrize("suffix", ["", "Z", "+00:00"])
def test_nanosecond_fraction_is_kept_in_flat_records(rec, suffix):
    parsed = parse_line(rec.line(rec.flat(ts="2025-12-06T01:12:47.123456789" + suffix, timestamp=rec.DROP)))
    assert parsed.ticks[0].ts_ns == ns("2025-12-06T01:12:47Z") + 123_456_789


def test_naive_offset_and_zulu_forms_agree():
    naive = parse_time_ns("2025-12-06T01:12:47.761914")
    assert parse_time_ns("2025-12-06T01:12:47.761914Z") == naive
    assert parse_time_ns("2025-12-06T01:12:47.761914+00:00") == naive
    assert parse_time_ns("2025-12-06T02:12:47.761914+01:00") == naive


def test_same_second_with_different_offsets_is_not_confused():
    """A cache keyed on the date-time prefix must still apply each string's own offset."""
    base = parse_time_ns("2025-12-06T01:12:47Z")
    assert parse_time_ns("2025-12-06T01:12:47+01:00") == base - 3_600_000_000_000
    assert parse_time_ns("2025-12-06T01:12:47-01:30") == base + 5_400_000_000_000
    assert parse_time_ns("2025-12-06T01:12:47.25") == base + 250_000_000
    assert parse_time_ns("2025-12-06T01:12:47") == base


@pytest.mark.parametrize("value, unit", [(1764983567, "s"), (1764983567761, "ms"),
                                         (1764983567761914, "us"), (1764983567761914123, "ns")])
def test_epoch_numbers_by_magnitude(value, unit):
    assert parse_time_ns(value) == pd.Timestamp(value, unit=unit).value


@pytest.mark.parametrize("bad", ["yesterday", "2025-13-06T01:12:47", "2025-12-06T01:12:47.abcZ", "", None,
                                 True, [2025], float("nan"), -5])
def test_unparseable_times_raise_value_error(bad):
    with pytest.raises(ValueError):
        parse_time_ns(bad)


# --- Coinbase Exchange feed messages ----------------------------------------------------------

EXCHANGE_TICKER = {
    "type": "ticker", "sequence": 26019387207, "product_id": "SOL-USD", "price": "138.38", "open_24h": "130.54",
    "volume_24h": "1744306.27382581", "low_24h": "128.35", "high_24h": "139.85", "volume_30d": "44621909.71126528",
    "best_bid": "138.340", "best_bid_size": "35.39592464", "best_ask": "138.380", "best_ask_size": "77.33171091",
    "side": "buy", "time": "2025-11-25T00:00:03.972943Z", "trade_id": 299985815, "last_size": "1.58144661",
}


def test_exchange_feed_ticker_message_yields_its_tick():
    parsed = parse_line(json.dumps(EXCHANGE_TICKER))
    assert parsed.rejections == [] and parsed.skipped_channel is None
    assert parsed.ticks == [Tick("SOL-USD", ns("2025-11-25T00:00:03.972943Z"), 138.38, 138.34, 138.38,
                                 35.39592464, 77.33171091, 1744306.27382581, 26019387207)]


@pytest.mark.parametrize("message", [
    {"type": "heartbeat", "sequence": 90, "last_trade_id": 20, "product_id": "BTC-USD", "time": "2025-11-25T00:00:03Z"},
    {"type": "subscriptions", "channels": [{"name": "ticker", "product_ids": ["BTC-USD"]}]},
])
def test_exchange_feed_messages_of_other_types_are_skipped_not_rejected(message):
    parsed = parse_line(json.dumps(message))
    assert parsed.ticks == [] and parsed.rejections == []
    assert parsed.skipped_channel == message["type"]


def test_exchange_feed_products_interleaved_keep_their_own_state():
    """Three products in one stream: each product's returns and segments are its own."""
    pipeline = FeaturePipeline(FeatureSpec(windows_s=(30.0,), segment_gap_s=30.0))
    quotes = [("BTC-USD", "00.0", 100.0), ("ETH-USD", "00.5", 10.0), ("BTC-USD", "01.0", 101.0),
              ("ETH-USD", "01.5", 11.0), ("BTC-USD", "40.0", 102.0)]  # BTC's last tick: 39 s after its previous
    rows = []
    for i, (product, second, bid) in enumerate(quotes):
        message = dict(EXCHANGE_TICKER, product_id=product, sequence=i, time=f"2025-11-25T00:00:{second}Z",
                       best_bid=str(bid), best_ask=str(bid + 1), price=str(bid))
        got, rejections = pipeline.process(json.dumps(message))
        assert rejections == []
        rows += got
    columns = pipeline.spec.columns
    by = [dict(zip(columns, r)) for r in rows]
    assert by[2]["log_return"] == pytest.approx(math.log(101.5 / 100.5))
    assert by[3]["log_return"] == pytest.approx(math.log(11.5 / 10.5))
    assert math.isnan(by[4]["log_return"])  # BTC started a new segment; ETH's ticks in between did not matter
    assert pipeline.summary.segments == 3
