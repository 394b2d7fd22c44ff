"""Turn one NDJSON line of any supported shape into validated ticks.

Supported shapes (see data/README.md):
  * the project's own raw record  {"received_at": ..., "frame": {...}, ["gap": reason]}
  * a wrapped frame               {"ingest_time": ..., "payload": {...}}
  * a bare Advanced Trade frame   {"channel": ..., "timestamp": ..., "events": [...]}
  * a flat ticker record          {"timestamp"|"ts"|...: ..., "product_id": ..., "best_bid": ...}
  * a Coinbase Exchange feed message {"type": "ticker", "sequence": ..., "time": ..., "best_bid_size": ...}
    (a flat record too; messages of other types -- heartbeat, subscriptions -- are skipped)

Acceptance rule 1 (reject what cannot be a valid quote) lives here because it needs no
state; the stateful rules (duplicate, late, segment) live in ``features.online``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import orjson

from common.times import format_time_ns  # re-exported: callers import it from here too


class Tick(NamedTuple):
    """One accepted ticker observation. Equality over all fields defines a duplicate."""

    product_id: str
    ts_ns: int  # exchange time (frames) or the record's own time (flat), ns since epoch, UTC
    price: float
    best_bid: float
    best_ask: float
    best_bid_qty: float | None = None
    best_ask_qty: float | None = None
    volume_24h: float | None = None
    sequence_num: int | None = None


class Rejection(NamedTuple):
    reason: str  # one of REJECT_REASONS
    detail: str


REJECT_REASONS = (
    "invalid_json",  # not JSON, or not a JSON object
    "unknown_shape",  # JSON, but neither a frame nor a flat ticker record
    "missing_product",
    "missing_time",
    "bad_time",  # a time that does not parse
    "missing_field",  # price, best_bid or best_ask absent
    "bad_number",  # a field that is not a number
    "bad_quote",  # bid or ask not finite or not positive, or price not positive
    "crossed_book",  # best_ask < best_bid
)


class ParsedRecord(NamedTuple):
    """What one line yields: ticks, rejections, and facts about the record itself."""

    ticks: list[Tick]
    rejections: list[Rejection]
    skipped_channel: str | None = None  # a frame of another channel (heartbeats, subscriptions)
    new_segment: bool = False  # the recorder saw a gap before this record
    received_ns: int | None = None  # local receive time, when the record carries one


FLAT_TIME_KEYS = ("timestamp", "ts", "ws_timestamp", "time")  # first present wins
FLAT_VOLUME_KEYS = ("volume_24h", "volume_24_h")
FLAT_SEQUENCE_KEYS = ("sequence_num", "sequence")  # the Exchange feed counts per product in "sequence"
BID_QTY_KEYS = ("best_bid_qty", "best_bid_quantity", "best_bid_size")
ASK_QTY_KEYS = ("best_ask_qty", "best_ask_quantity", "best_ask_size")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)


def parse_line(line: bytes | str) -> ParsedRecord:
    """Parse one line; never raises on bad input, which comes back as rejections."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return ParsedRecord([], [Rejection("invalid_json", str(exc))])
    if not isinstance(obj, dict):
        return ParsedRecord([], [Rejection("invalid_json", f"expected an object, got {type(obj).__name__}")])
    return parse_object(obj)


def parse_object(obj: dict[str, Any]) -> ParsedRecord:
    """Dispatch on the record's shape."""
    if "frame" in obj:  # the project's own raw record
        frame = obj["frame"]
        received = _optional_time(obj.get("received_at"))
        gap = bool(obj.get("gap"))
    elif "payload" in obj:  # wrapped by another recorder
        frame = obj["payload"]
        received = _optional_time(obj.get("ingest_time"))
        gap = False
    elif "channel" in obj or "events" in obj:
        frame, received, gap = obj, None, False
    elif isinstance(obj.get("type"), str) and obj["type"] != "ticker":  # Exchange feed: heartbeat, subscriptions
        return ParsedRecord([], [], obj["type"])
    elif "product_id" in obj or any(k in obj for k in FLAT_TIME_KEYS):
        ticks, rejections = _one(_flat_tick, obj)
        return ParsedRecord(ticks, rejections)
    else:
        return ParsedRecord([], [Rejection("unknown_shape", f"keys: {sorted(obj)[:8]}")])
    if not isinstance(frame, dict):
        return ParsedRecord([], [Rejection("unknown_shape", "frame is not an object")], None, gap, received)
    channel = frame.get("channel")
    if channel != "ticker":
        return ParsedRecord([], [], str(channel), gap, received)
    ticks, rejections = _frame_ticks(frame)
    return ParsedRecord(ticks, rejections, None, gap, received)


def _frame_ticks(frame: dict[str, Any]) -> tuple[list[Tick], list[Rejection]]:
    """All tickers of a ticker frame, stamped with the frame's exchange time."""
    stamp = frame.get("timestamp")
    if stamp is None:
        return [], [Rejection("missing_time", "ticker frame without timestamp")]
    try:
        ts_ns = parse_time_ns(stamp)
    except ValueError as exc:
        return [], [Rejection("bad_time", str(exc))]
    sequence_num = frame.get("sequence_num")
    ticks: list[Tick] = []
    rejections: list[Rejection] = []
    events = frame.get("events")
    if not isinstance(events, list):
        return [], [Rejection("unknown_shape", "ticker frame without an events list")]
    for event in events:
        tickers = event.get("tickers") if isinstance(event, dict) else None
        if not isinstance(tickers, list):
            rejections.append(Rejection("unknown_shape", "ticker event without a tickers list"))
            continue
        for t in tickers:
            if not isinstance(t, dict):
                rejections.append(Rejection("unknown_shape", "ticker is not an object"))
                continue
            try:
                ticks.append(
                    _make_tick(
                        t.get("product_id"), ts_ns, t.get("price"), t.get("best_bid"), t.get("best_ask"),
                        t.get("best_bid_quantity"), t.get("best_ask_quantity"), t.get("volume_24_h"),
                        sequence_num,
                    )
                )
            except _Reject as rej:
                rejections.append(Rejection(*rej.args))
    return ticks, rejections


def _flat_tick(obj: dict[str, Any]) -> Tick:
    """A flat ticker record; other recorders' key spellings and a nested ``raw`` are accepted."""
    stamp = _first(obj, FLAT_TIME_KEYS)
    if stamp is None:
        raise _Reject("missing_time", f"none of {', '.join(FLAT_TIME_KEYS)}")
    try:
        ts_ns = parse_time_ns(stamp)
    except ValueError as exc:
        raise _Reject("bad_time", str(exc)) from None
    raw = obj.get("raw")
    if not isinstance(raw, dict):
        raw = _EMPTY
    return _make_tick(
        obj.get("product_id"), ts_ns, obj.get("price"), obj.get("best_bid"), obj.get("best_ask"),
        _first(obj, BID_QTY_KEYS, raw), _first(obj, ASK_QTY_KEYS, raw), _first(obj, FLAT_VOLUME_KEYS, raw),
        _first(obj, FLAT_SEQUENCE_KEYS),
    )


_EMPTY: dict[str, Any] = {}


def _first(obj: dict[str, Any], keys: tuple[str, ...], fallback: dict[str, Any] = _EMPTY) -> Any:
    """The value of the first key present in ``obj``, else in ``fallback``."""
    for source in (obj, fallback):
        for key in keys:
            value = source.get(key)
            if value is not None:
                return value
    return None


def _make_tick(
    product: Any, ts_ns: int, price: Any, bid: Any, ask: Any,
    bid_qty: Any, ask_qty: Any, volume: Any, sequence_num: Any,
) -> Tick:
    """Rule 1: a tick needs a product, numeric price/bid/ask, a positive finite quote, no crossed book."""
    if not product or type(product) is not str:
        raise _Reject("missing_product", "no product_id")
    try:
        if type(price) is bool or type(bid) is bool or type(ask) is bool:
            raise TypeError
        price, bid, ask = float(price), float(bid), float(ask)
    except (TypeError, ValueError):
        raise _diagnose({"price": price, "best_bid": bid, "best_ask": ask}) from None
    if not (0.0 < bid < _INF and 0.0 < ask < _INF and 0.0 < price < _INF):
        raise _Reject("bad_quote", f"{product}: price {price}, bid {bid}, ask {ask}")
    if ask < bid:
        raise _Reject("crossed_book", f"{product}: ask {ask} < bid {bid}")
    return Tick(
        product, ts_ns, price, bid, ask,
        _optional_float(bid_qty, "best_bid_qty"),
        _optional_float(ask_qty, "best_ask_qty"),
        _optional_float(volume, "volume_24h"),
        sequence_num if type(sequence_num) is int and _MIN_SEQUENCE < sequence_num <= _MAX_INT64 else None,
    )


_MAX_INT64 = 2**63 - 1
_MIN_SEQUENCE = -(2**63)  # the lowest 64-bit integer marks an absent sequence number in columns


_INF = float("inf")


class _Reject(Exception):
    """Internal: carries (reason, detail) out of the nested validation helpers."""


def _one(build, obj) -> tuple[list[Tick], list[Rejection]]:
    try:
        return [build(obj)], []
    except _Reject as rej:
        return [], [Rejection(*rej.args)]


def _diagnose(fields: dict[str, Any]) -> _Reject:
    """Name the first required field that is absent or not a number."""
    for key, value in fields.items():
        if value is None:
            return _Reject("missing_field", f"no {key}")
    for key, value in fields.items():
        if type(value) is bool or not isinstance(value, (str, int, float)):
            return _Reject("bad_number", f"{key} = {value!r}")
        try:
            float(value)
        except ValueError:
            return _Reject("bad_number", f"{key} = {value!r}")
    return _Reject("bad_number", str(fields))


def _optional_float(value: Any, key: str) -> float | None:
    """Optional quantities: absent, empty, negative or non-finite become None; text is an error."""
    if value is None or value == "":
        return None
    try:
        if type(value) is bool:
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise _Reject("bad_number", f"{key} = {value!r}") from None
    return number if 0.0 <= number < _INF else None


def _optional_time(value: Any) -> int | None:
    try:
        return parse_time_ns(value) if value is not None else None
    except ValueError:
        return None


def parse_time_ns(value: Any) -> int:
    """ISO-8601 text (naive = UTC, fraction kept to the ns) or epoch s/ms/us/ns number -> ns.

    Times must lie from 1970 to 2262 (ns since 1970 in 64 bits); others are not market data.
    """
    ns = _time_ns(value)
    if not 0 <= ns <= _MAX_INT64:
        raise ValueError(f"not a time from 1970 to 2262: {value!r}")
    return ns


def _time_ns(value: Any) -> int:
    """The fast path caches the epoch of each 'YYYY-MM-DDTHH:MM:SS' prefix: recorded ticks
    arrive a few per second, so most lookups hit.
    """
    if type(value) is not str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _epoch_number_ns(value)
        raise ValueError(f"not a time: {value!r}")
    base = _SECOND_CACHE.get(value[:19])
    if base is None:
        base = _second_epoch(value)
        if base is None:
            return _parse_iso_slow(value)
    rest = value[19:]
    if not rest:
        return base
    offset = 0
    last = rest[-1]
    if last == "Z" or last == "z":
        rest = rest[:-1]
    elif len(rest) >= 6 and rest[-3] == ":" and rest[-6] in "+-":
        sign = 1 if rest[-6] == "+" else -1
        try:
            offset = sign * (int(rest[-5:-3]) * 3600 + int(rest[-2:]) * 60) * 1_000_000_000
        except ValueError:
            return _parse_iso_slow(value)
        rest = rest[:-6]
    if rest:
        digits = rest[1:]
        if rest[0] != "." or not digits.isdigit():
            return _parse_iso_slow(value)
        base += int(digits[:9]) * _FRACTION_SCALE[min(len(digits), 9)]
    return base - offset


_SECOND_CACHE: dict[str, int] = {}
_FRACTION_SCALE = [10 ** (9 - n) for n in range(10)]


def _second_epoch(value: str) -> int | None:
    """ns of 'YYYY-MM-DDTHH:MM:SS' (cached), or None when the text has another layout."""
    head = value[:19]
    if len(head) != 19 or head[10] not in "T " or head[4] != "-" or head[13] != ":":
        return None
    try:
        moment = datetime.fromisoformat(head).replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    ns = (moment - _EPOCH) // _ONE_US * 1000
    if len(_SECOND_CACHE) >= 100_000:
        _SECOND_CACHE.clear()
    _SECOND_CACHE[head] = ns
    return ns


def _parse_iso_slow(value: str) -> int:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return (parsed - _EPOCH) // _ONE_US * 1000


def _epoch_number_ns(value: float) -> int:
    """Epoch numbers: the magnitude tells seconds, milliseconds, microseconds or nanoseconds."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"not a time: {value!r}")
    magnitude = abs(value)
    if magnitude < 1e11:
        scale = 1_000_000_000
    elif magnitude < 1e14:
        scale = 1_000_000
    elif magnitude < 1e17:
        scale = 1_000
    else:
        scale = 1
    if isinstance(value, int):
        return value * scale
    return round(value * scale)


def raw_record(frame_text: str | bytes, received_ns: int, gap: str | None = None) -> bytes:
    """The project's raw record: the frame exactly as received, plus the local receive time.

    ``gap`` names why the recorder may have missed frames just before this one (reconnect,
    sequence, heartbeat); replay and the live consumer start a new segment there. The frame
    must be valid JSON; it is embedded byte for byte unless it spans lines.
    """
    text = frame_text.decode() if isinstance(frame_text, bytes) else frame_text
    text = text.strip()
    if "\n" in text or "\r" in text:
        text = orjson.dumps(orjson.loads(text)).decode()
    head = {"received_at": format_time_ns(received_ns)}
    if gap:
        head["gap"] = gap
    return orjson.dumps(head)[:-1] + b',"frame":' + text.encode() + b"}"
