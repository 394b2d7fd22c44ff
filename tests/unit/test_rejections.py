"""Acceptance rule 1: what cannot be a valid quote is rejected, counted by reason, and never stops the stream."""

from __future__ import annotations

import pytest

from features.online import FeatureSpec
from features.pipeline import FeaturePipeline
from features.ticks import REJECT_REASONS, parse_line

RAW_BAD_LINES = {
    "truncated": (b'{"timestamp": "2025-12-06T01:12:47", "product_id": "BTC-USD", ', "invalid_json"),
    "not_json": (b"hello world", "invalid_json"),
    "binary": (b"\xff\xfe\x00\x01garbage", "invalid_json"),
    "trailing_garbage": (b'{"product_id": "BTC-USD"}}', "invalid_json"),
    "nan_literal": (b'{"timestamp": "2025-12-06T01:12:47", "product_id": "BTC-USD", "price": NaN, '
                    b'"best_bid": 1, "best_ask": 2}', "invalid_json"),
    "array": (b"[1, 2, 3]", "invalid_json"),
    "string": (b'"BTC-USD"', "invalid_json"),
    "number": (b"42", "invalid_json"),
    "null": (b"null", "invalid_json"),
    "bool": (b"true", "invalid_json"),
    "unknown_object": (b'{"hello": "world"}', "unknown_shape"),
}


@pytest.mark.parametrize("name", sorted(RAW_BAD_LINES))
def test_unparseable_lines_are_rejected(name):
    text, reason = RAW_BAD_LINES[name]
    parsed = parse_line(text)
    assert parsed.ticks == []
    assert [r.reason for r in parsed.rejections] == [reason]
    assert parsed.rejections[0].detail


# (field overrides on a valid flat record, expected reason); None drops the key.
FLAT_CASES = {
    "no_product": ({"product_id": None}, "missing_product"),
    "empty_product": ({"product_id": ""}, "missing_product"),
    "null_product": ({"product_id": "NULL"}, "missing_product"),
    "numeric_product": ({"product_id": 42}, "missing_product"),
    "no_time": ({"timestamp": None}, "missing_time"),
    "null_time": ({"timestamp": "NULL"}, "missing_time"),
    "unparseable_time": ({"timestamp": "yesterday at noon"}, "bad_time"),
    "no_price": ({"price": None}, "missing_field"),
    "no_bid": ({"best_bid": None}, "missing_field"),
    "no_ask": ({"best_ask": None}, "missing_field"),
    "null_bid": ({"best_bid": "NULL"}, "missing_field"),
    "text_bid": ({"best_bid": "abc"}, "bad_number"),
    "empty_ask": ({"best_ask": ""}, "bad_number"),
    "text_price": ({"price": "12abc"}, "bad_number"),
    "thousands_separator": ({"best_ask": "89,390.00"}, "bad_number"),
    "list_bid": ({"best_bid": [89388.37]}, "bad_number"),
    "object_ask": ({"best_ask": {"value": "89390"}}, "bad_number"),
    "bool_price": ({"price": True}, "bad_number"),
    "nan_bid": ({"best_bid": "NaN"}, "bad_quote"),
    "nan_lower_ask": ({"best_ask": "nan"}, "bad_quote"),
    "inf_ask": ({"best_ask": "inf"}, "bad_quote"),
    "infinity_ask": ({"best_ask": "Infinity"}, "bad_quote"),
    "minus_inf_bid": ({"best_bid": "-inf"}, "bad_quote"),
    "overflow_ask": ({"best_ask": "1e400"}, "bad_quote"),
    "nan_price": ({"price": "NaN"}, "bad_quote"),
    "zero_bid": ({"best_bid": "0"}, "bad_quote"),
    "zero_ask": ({"best_ask": 0}, "bad_quote"),
    "zero_price": ({"price": "0.0"}, "bad_quote"),
    "negative_bid": ({"best_bid": "-89388.37"}, "bad_quote"),
    "negative_ask": ({"best_ask": -0.01}, "bad_quote"),
    "negative_price": ({"price": "-5"}, "bad_quote"),
    "crossed": ({"best_bid": "89390.01", "best_ask": "89390"}, "crossed_book"),
    "crossed_numbers": ({"best_bid": 101, "best_ask": 100.5}, "crossed_book"),
}


def _overrides(rec, fields):
    out = {}
    for key, value in fields.items():
        if value is None:
            out[key] = rec.DROP
        elif value == "NULL":
            out[key] = None  # present, JSON null
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("name", sorted(FLAT_CASES))
def test_bad_flat_records_are_rejected_with_reason(rec, name):
    fields, reason = FLAT_CASES[name]
    assert reason in REJECT_REASONS
    parsed = parse_line(rec.line(rec.flat(**_overrides(rec, fields))))
    assert parsed.ticks == []
    assert [r.reason for r in parsed.rejections] == [reason]
    assert parsed.rejections[0].detail


FRAME_TICKER_CASES = {k: v for k, v in FLAT_CASES.items() if not k.endswith("time")}


@pytest.mark.parametrize("name", sorted(FRAME_TICKER_CASES))
def test_bad_tickers_inside_frames_are_rejected_with_reason(rec, name):
    fields, reason = FRAME_TICKER_CASES[name]
    parsed = parse_line(rec.line(rec.frame([rec.ticker(**_overrides(rec, fields))])))
    assert parsed.ticks == []
    assert [r.reason for r in parsed.rejections] == [reason]


@pytest.mark.parametrize("timestamp, reason", [(None, "missing_time"), ("NULL", "missing_time"),
                                               ("not a time", "bad_time")])
def test_ticker_frame_without_usable_time_is_rejected(rec, timestamp, reason):
    value = rec.DROP if timestamp is None else (None if timestamp == "NULL" else timestamp)
    parsed = parse_line(rec.line(rec.frame(timestamp=value)))
    assert parsed.ticks == []
    assert [r.reason for r in parsed.rejections] == [reason]


def test_equal_bid_and_ask_is_not_crossed(rec):
    parsed = parse_line(rec.line(rec.flat(best_bid="89390", best_ask="89390.00")))
    assert parsed.rejections == []
    assert parsed.ticks[0].best_bid == parsed.ticks[0].best_ask == 89390.0


def test_bad_lines_are_counted_and_the_stream_goes_on(rec):
    """Every kind of bad line, interleaved with good ones: each good one still becomes a row."""
    pipeline = FeaturePipeline(FeatureSpec())
    expected: dict[str, int] = {}
    good_rows = 0
    for i, name in enumerate(sorted(FLAT_CASES)):
        fields, reason = FLAT_CASES[name]
        rows, rejections = pipeline.process(rec.line(rec.flat(**_overrides(rec, fields))))
        assert rows == [] and [r.reason for r in rejections] == [reason]
        expected[reason] = expected.get(reason, 0) + 1
        good = rec.flat(timestamp=f"2025-12-06T01:12:{i:02d}.5", price=str(100 + i))
        rows, rejections = pipeline.process(rec.line(good))
        assert len(rows) == 1 and rejections == []
        good_rows += 1
    for text, reason in RAW_BAD_LINES.values():
        rows, rejections = pipeline.process(text)
        assert rows == [] and [r.reason for r in rejections] == [reason]
        expected[reason] = expected.get(reason, 0) + 1
    summary = pipeline.summary
    assert dict(summary.rejected) == expected
    assert summary.accepted == good_rows
    assert summary.lines == len(FLAT_CASES) * 2 + len(RAW_BAD_LINES)
