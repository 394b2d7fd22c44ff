"""The compiled scanner (features.scan) reads every line it claims exactly as parse_line does.

Lines of every shape the project reads (flat records in their spellings, Exchange feed messages,
bare and wrapped frames, the project's raw records with and without a gap), with values drawn
from what recorders really write and from what breaks parsers (other number and time
spellings, exponents, huge integers, empty and negative values, escapes, non-ASCII text,
repeated keys, broken JSON). For every line the scanner handles itself, its ticks must be
parse_line's, field for field, with no rejection and no skipped frame; every other line is left
to parse_line, which the pipeline then calls.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features.native import NO_SEQUENCE
from features.online import FeatureSpec
from features.pipeline import FeaturePipeline
from features.scan import FALLBACK, OK, scan_lines
from features.ticks import parse_line
from test_properties import FAST

NUMBER_TEXT = ["89387.88", "89390", "0.01949308", "8344.15909011", "1744306.27382581", "142.710", "0.00800000",
               "0", "0.0", "-0", "-1.5", "", " 5", "5 ", "+5", "1e5", "1E-3", "1_000", "nan", "inf", "-inf",
               "5.", ".5", "007.25", "12345678901234567", "9007199254740993", "123456789012.3456",
               "0.000000000000000000000001", "1" + "0" * 25, "abc", "1.2.3", "\u0661\u0662"]
JSON_NUMBERS = [0, 1, -1, 89390, 89387.88, 0.5, 1e-7, 2**53 + 1, 2**63 - 1, 2**63, 2**64 + 5, -2**63, 1.5e300]
TIMES = ["2025-12-06T01:12:47.761914", "2026-04-05T22:35:13.92532762Z", "2025-11-25T00:00:03.972943Z",
         "2025-12-06T01:12:47", "2025-12-06 01:12:47.5", "2025-12-06T01:12:47.123456789123Z",
         "2025-12-06T01:12:47+00:00", "2025-12-06T01:12:47.25-05:30", "2025-12-06T01:12:47.25+0530",
         "2025-12-06T01:12:47z", "2025-12-06T01:12:47.Z", "2025-12-06T01:12:47.", "2025-02-29T00:00:00",
         "2024-02-29T23:59:59.999999999", "2025-13-01T00:00:00", "2025-12-06T24:00:00", "2025-12-06T01:60:00",
         "2025-12-06T01:12:60", "1969-12-31T23:59:59", "1970-01-01T00:00:00+01:00", "1970-01-01T00:00:00",
         "2262-04-11T23:47:16.854775807", "2261-12-31T23:59:59.999999999-99:59", "9999-12-31T23:59:59",
         "2025-12-06", "2025-12-06T01:12", "20251206T011247", "2025-12-06T01:12:47.1 ", "not a time",
         "2025-12-06t01:12:47", "2025-12-06T01:12:47.7+00:0x"]
EPOCHS = [1764983567, 1764983567.761914, 1764983567761, 1764983567761914, 1764983567761914000, 0, -5, 1e30]
PRODUCTS = ["BTC-USD", "ETH-USD", "SOL-USD", "", "BTC-USDC", "A", "\u00e9th-usd", "x" * 40]
FLAT_TIME_KEYS = ["timestamp", "ts", "ws_timestamp", "time"]
QTY_KEYS = [("best_bid_qty", "best_ask_qty"), ("best_bid_quantity", "best_ask_quantity"),
            ("best_bid_size", "best_ask_size")]

# Values the compiled path reads itself, edge cases included (negative or empty quantities are None, -0 is -0.0)
REAL_NUMBERS = ["0.01949308", "35.39592464", "8344.15909011", "1744306.27382581", "0", "1.5", "0.00800000",
                "-1.5", "-0", "-0.0", "", "007.25", "9007199254740992", "123456789012.3456", 0, 7, -2, 0.5, -0.0,
                1e-7, 12345678.9]
REAL_TIMES = ["2025-12-06T01:12:47.761914", "2026-04-05T22:35:13.92532762Z", "2025-11-25T00:00:03.972943Z",
              "2025-12-06T01:12:47", "2025-12-06 01:12:47.5", "2025-12-06T01:12:47.123456789123Z",
              "2025-12-06T01:12:47+00:00", "2025-12-06T01:12:47.25-05:30", "2025-12-06T01:12:47z",
              "2024-02-29T23:59:59.999999999", "2000-02-29T12:00:00.1+14:00", "1970-01-01T00:00:00",
              "2261-12-31T23:59:59.999999999-99:59", "2100-03-01T00:00:00.000000001Z"]
MISSING = object()
EXOTIC = 0.04  # chance of an exotic value in any one field: about half the lines stay on the fast path
PERCENT = st.sampled_from(range(100))  # uniform enough; st.floats(0, 1) favours 0 and 1


@st.composite
def value(draw, real: list, exotic: st.SearchStrategy, p_missing: float = 0.0) -> Any:
    """Mostly one of the values recorders write, sometimes an exotic one, sometimes none."""
    roll = draw(PERCENT) / 100
    if roll < p_missing:
        return MISSING
    if roll < p_missing + EXOTIC:
        return draw(exotic)
    return draw(st.sampled_from(real))


exotic_number = st.one_of(st.sampled_from(NUMBER_TEXT), st.sampled_from(JSON_NUMBERS),
                          st.sampled_from([None, True, False]), st.just({"x": 1}), st.just([1]))
exotic_time = st.one_of(st.sampled_from(TIMES), st.sampled_from(EPOCHS), st.sampled_from([None, True, {}, ""]))
exotic_product = st.one_of(st.sampled_from(PRODUCTS), st.sampled_from([None, 5, ["BTC-USD"]]))
exotic_sequence = st.one_of(st.integers(-3, 10**12), st.sampled_from([2**63 - 1, 2**63, -2**63, 10**19, 5.0, "7",
                                                                      True, None]))
quantity = value(REAL_NUMBERS + [None], exotic_number, 0.3)
real_time = value(REAL_TIMES, exotic_time)
product_like = value(["BTC-USD", "ETH-USD", "SOL-USD"], exotic_product)
sequence_like = value([2, 26019387207, 0, 1234], exotic_sequence, 0.4)


def put(obj: dict, key: str, item: Any) -> None:
    if item is not MISSING:
        obj[key] = item


@st.composite
def quote(draw) -> dict:
    """price, bid and ask: mostly an ordered book as text or numbers, sometimes anything."""
    bid = draw(st.sampled_from([100.0, 89387.88, 142.71, 0.015, 67468.26, 89390.0, 3, 1234567.891]))
    ask = bid + draw(st.sampled_from([0, 0.01, 1.36, 0.5]))
    form = draw(st.sampled_from(["text", "number", "padded"]))
    if form == "text":
        out = {"price": f"{bid}", "best_bid": f"{bid}", "best_ask": f"{ask:.2f}"}
    elif form == "padded":  # trailing zeros as the Exchange feed writes them
        out = {"price": f"{bid:.8f}", "best_bid": f"{bid:.3f}", "best_ask": f"{ask:.5f}"}
    else:
        out = {"price": bid, "best_bid": bid, "best_ask": ask}
    for key in out:
        if draw(PERCENT) / 100 < EXOTIC:
            out[key] = draw(st.one_of(exotic_number, st.just(MISSING)))
    return {k: v for k, v in out.items() if v is not MISSING}


@st.composite
def flat_record(draw) -> dict:
    obj: dict = {}
    keys = ["timestamp"] if draw(PERCENT) / 100 > 0.2 else draw(st.lists(st.sampled_from(FLAT_TIME_KEYS), max_size=2))
    for key in keys:
        obj[key] = draw(real_time)
    put(obj, "product_id", draw(product_like))
    obj.update(draw(quote()))
    bid_key, ask_key = draw(st.sampled_from(QTY_KEYS))
    put(obj, bid_key, draw(quantity))
    put(obj, ask_key, draw(quantity))
    put(obj, draw(st.sampled_from(["volume_24h", "volume_24_h"])), draw(quantity))
    put(obj, draw(st.sampled_from(["sequence_num", "sequence"])), draw(sequence_like))
    if draw(st.booleans()):
        raw: dict = {"type": "ticker", "product_id": obj.get("product_id"), "low_24_h": "88099.05"}
        bid_key, ask_key = draw(st.sampled_from(QTY_KEYS))
        put(raw, bid_key, draw(quantity))
        put(raw, ask_key, draw(quantity))
        put(raw, "volume_24_h", draw(quantity))
        obj["raw"] = raw if draw(PERCENT) / 100 > EXOTIC else draw(st.sampled_from([None, "raw", [raw]]))
    put(obj, "type", draw(value(["ticker", MISSING], st.sampled_from(["heartbeat", "subscriptions", 5, None]))))
    put(obj, "side", draw(value(["buy", "sell", MISSING], st.just(None))))
    put(obj, "trade_id", draw(value([299985815, MISSING], st.just(2**70))))
    return obj


@st.composite
def ticker(draw) -> dict:
    out: dict = {"type": "ticker"}
    put(out, "product_id", draw(product_like))
    out.update(draw(quote()))
    put(out, "best_bid_quantity", draw(quantity))
    put(out, "best_ask_quantity", draw(quantity))
    put(out, "volume_24_h", draw(quantity))
    put(out, "best_bid_qty", draw(value([MISSING], exotic_number)))  # a flat spelling: ignored inside frames
    return out


@st.composite
def frame(draw) -> dict:
    tickers = draw(st.lists(ticker(), min_size=1, max_size=3)) if draw(PERCENT) / 100 > 0.05 else []
    event: Any = {"type": draw(st.sampled_from(["update", "snapshot"])), "tickers": tickers}
    if draw(PERCENT) / 100 < EXOTIC:
        event = draw(st.sampled_from([{"type": "update"}, {"type": "update", "tickers": {"a": 1}}, "event"]))
    events: Any = [event]
    if draw(PERCENT) / 100 < 0.1:
        events.append(draw(st.sampled_from([{"type": "x", "tickers": []}, {"tickers": tickers}])))
    if draw(PERCENT) / 100 < EXOTIC:
        events = draw(st.sampled_from([None, {}, "events", MISSING]))
    out: dict = {"channel": draw(value(["ticker"], st.sampled_from(["heartbeats", "subscriptions", None, 5])))}
    put(out, "client_id", draw(value(["", MISSING], st.just(5))))
    put(out, "timestamp", draw(real_time))
    put(out, "sequence_num", draw(sequence_like))
    put(out, "events", events)
    return out


@st.composite
def record(draw) -> Any:
    kind = draw(st.sampled_from(["flat", "flat", "exchange", "bare", "wrapped", "raw", "raw_gap"] * 4 + ["junk"]))
    if kind in ("flat", "exchange"):
        obj = draw(flat_record())
        if kind == "exchange":
            obj = {"type": "ticker", **{k: v for k, v in obj.items() if k != "raw"}}
        return obj
    if kind == "bare":
        return draw(frame())
    if kind == "wrapped":
        out = {"ingest_time": draw(real_time), "product_id": "BTC-USD", "payload": draw(frame())}
        if draw(PERCENT) / 100 < EXOTIC:
            out["payload"] = draw(st.sampled_from([None, "frame", [1]]))
        return out
    if kind in ("raw", "raw_gap"):
        out = {"received_at": draw(real_time)}
        if kind == "raw_gap":
            out["gap"] = draw(st.sampled_from(["reconnect", "sequence", "", None, True, False, 0, 1, [], ["x"]]))
        out["frame"] = draw(frame()) if draw(PERCENT) / 100 > EXOTIC else draw(st.sampled_from([None, "x"]))
        if draw(PERCENT) / 100 < EXOTIC:
            out["payload"] = draw(frame())
        return out
    return draw(st.sampled_from([[1, 2], "text", 5, None, {"hello": "world"}, {}, {"channel": "ticker"}]))


def serialize(draw, obj: Any) -> bytes:
    """JSON as recorders write it, sometimes with other whitespace, escapes, repeated keys or damage."""
    style = draw(st.sampled_from(["compact", "spaced"] * 8 + ["indent", "ascii_off", "escaped"]))
    if style == "compact":
        text = json.dumps(obj, separators=(",", ":"))
    elif style == "indent":
        text = json.dumps(obj, indent=1)
    elif style == "ascii_off":
        text = json.dumps(obj, ensure_ascii=False)
    elif style == "escaped":
        text = json.dumps(obj).replace("price", "pr\\u0069ce", 1)
    else:
        text = json.dumps(obj)
    damage = draw(st.sampled_from(["none"] * 40 + ["repeat_key", "cut", "trailing_comma", "tail", "crlf", "ws",
                                                    "nan", "leading_zero", "exponent", "control"]))
    if damage == "repeat_key" and text.startswith("{") and len(text) > 2:
        key = draw(st.sampled_from(["price", "best_bid", "timestamp", "product_id", "frame", "tickers", "raw"]))
        text = text[:-1] + f', "{key}": "1.5"}}'
    elif damage == "cut":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    elif damage == "trailing_comma" and text.endswith("}") and len(text) > 2:
        text = text[:-1] + ",}"
    elif damage == "tail":
        text += draw(st.sampled_from(["x", "{}", " ", "\t", "\x0b"]))
    elif damage == "crlf":
        text += "\r"
    elif damage == "ws":
        text = draw(st.sampled_from([" ", "\t", "\r\n", "\x0c"])) + text
    elif damage == "nan":
        text = text.replace('"89387.88"', "NaN", 1)
    elif damage == "leading_zero":
        text = text.replace(": 0", ": 00", 1).replace(":0", ":00", 1)
    elif damage == "exponent":
        text = text.replace('"100.5"', "1005e-1", 1)
    elif damage == "control":
        text = text.replace("BTC-USD", "BTC\x01USD", 1)
    return text.encode()


@st.composite
def lines(draw) -> list[bytes]:
    return [serialize(draw, draw(record())) for _ in range(draw(st.integers(1, 12)))]


def same_optional(column_value: float, tick_value: float | None) -> bool:
    if tick_value is None:
        return math.isnan(column_value)
    return column_value == tick_value and math.copysign(1.0, column_value) == math.copysign(1.0, tick_value)


def assert_scanned_lines_equal_parse_line(batch: list[bytes]) -> int:
    """The check; returns how many lines the scanner handled itself."""
    lengths = np.array([len(b) for b in batch], dtype=np.int64)
    ends = np.cumsum(lengths + 1) - 1
    starts = ends - lengths
    buf = np.frombuffer(b"\n".join(batch), dtype=np.uint8)
    ticks, kind = scan_lines(buf, starts, ends)
    assert set(kind.tolist()) <= {OK, FALLBACK}
    handled = 0
    for i, text in enumerate(batch):
        mine = np.flatnonzero(ticks.line == i)
        if kind[i] == FALLBACK:
            assert len(mine) == 0
            continue
        handled += 1
        parsed = parse_line(text)
        where = f"line {i}: {text[:300]!r}"
        assert parsed.rejections == [] and parsed.skipped_channel is None, where
        assert len(mine) == len(parsed.ticks), where
        for j, tick in zip(mine.tolist(), parsed.ticks):
            assert ticks.products[ticks.product[j]] == tick.product_id, where
            assert int(ticks.ts[j]) == tick.ts_ns, where
            for name, value in (("price", tick.price), ("bid", tick.best_bid), ("ask", tick.best_ask)):
                assert getattr(ticks, name)[j] == value, f"{where}: {name}"
            for name, value in (("bid_qty", tick.best_bid_qty), ("ask_qty", tick.best_ask_qty),
                                ("volume", tick.volume_24h)):
                assert same_optional(getattr(ticks, name)[j], value), f"{where}: {name} {getattr(ticks, name)[j]!r}"
            expected_sequence = NO_SEQUENCE if tick.sequence_num is None else tick.sequence_num
            assert int(ticks.sequence[j]) == expected_sequence, where
            assert bool(ticks.forced[j]) == parsed.new_segment, where
    return handled


@settings(max_examples=400, **FAST)
@given(lines())
def test_every_line_the_scanner_handles_equals_parse_line(batch):
    assert_scanned_lines_equal_parse_line(batch)


def test_the_generated_lines_reach_both_paths():
    """Not vacuous: many generated lines take the compiled path, many are left to parse_line."""
    counts = {"handled": 0, "lines": 0}

    @settings(max_examples=100, **FAST)
    @given(lines())
    def count(batch):
        counts["handled"] += assert_scanned_lines_equal_parse_line(batch)
        counts["lines"] += len(batch)

    count()
    assert 0.2 * counts["lines"] < counts["handled"] < 0.8 * counts["lines"], counts


def test_the_recorded_shapes_are_handled_by_the_scanner(rec):
    """The shapes of the bundled data and of the live path never fall back (or the scanner would buy nothing)."""
    exchange = {"type": "ticker", "sequence": 26019387207, "product_id": "SOL-USD", "price": "138.38",
                "volume_24h": "1744306.27382581", "best_bid": "138.340", "best_bid_size": "35.39592464",
                "best_ask": "138.380", "best_ask_size": "77.33171091", "side": "buy",
                "time": "2025-11-25T00:00:03.972943Z", "trade_id": 299985815, "last_size": "1.58144661"}
    flat = rec.flat(raw={"type": "ticker", "best_bid_quantity": "0.01949308", "best_ask_quantity": "0.01916883"})
    frame = rec.frame()
    batch = [json.dumps(exchange, separators=(",", ":")).encode(), rec.line(flat), rec.line(frame),
             json.dumps({"ingest_time": "2026-04-05T22:35:13.865365+00:00", "product_id": "BTC-USD",
                         "payload": frame}).encode(),
             json.dumps({"received_at": "2026-04-05T22:35:13.8Z", "gap": "reconnect", "frame": frame}).encode()]
    assert assert_scanned_lines_equal_parse_line(batch) == len(batch)


def test_a_batch_mixing_handled_and_fallback_lines_keeps_their_order(rec):
    """Rows come out in line order whichever path parsed each line."""
    pipeline = FeaturePipeline(FeatureSpec())
    batch = []
    for i in range(12):
        stamp = f"2025-12-06T01:12:{10 + i:02d}.5"
        obj = rec.flat(timestamp=stamp, price=str(100 + i), best_bid=str(100 + i), best_ask=str(100.5 + i))
        text = rec.line(obj)
        if i % 3 == 1:
            text = text.replace(b"price", b"pr\\u0069ce")  # an escape: parse_line reads this one
        batch.append(text)
    batch_rows, rejections = pipeline.process_batch(batch)
    assert rejections == {}
    rows = batch_rows.rows()
    assert [r[3] for r in rows] == [100.0 + i for i in range(12)]
    assert batch_rows.line.tolist() == list(range(12))
