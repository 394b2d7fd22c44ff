"""What a well-formed record of each topic looks like (used by the consume check and tests)."""

from __future__ import annotations

import base64
import binascii

import orjson

from features.ticks import parse_time_ns


def raw_problem(value: bytes) -> str | None:
    """A raw record: {"received_at": ISO time, ["gap": reason,] "frame": {...}}."""
    obj, problem = _object(value)
    if problem:
        return problem
    try:
        parse_time_ns(obj.get("received_at"))
    except ValueError:
        return "received_at is missing or not a time"
    if not isinstance(obj.get("frame"), dict):
        return "frame is missing or not an object"
    return None


def feature_problem(value: bytes, columns: tuple[str, ...]) -> str | None:
    """A feature row: every feature column, product_id a string, ts and segment int ns."""
    obj, problem = _object(value)
    if problem:
        return problem
    missing = [c for c in columns if c not in obj]
    if missing:
        return f"missing columns {missing[:5]}"
    if not isinstance(obj["product_id"], str) or type(obj["ts"]) is not int or type(obj["segment"]) is not int:
        return "product_id must be a string and ts, segment integers (ns since epoch)"
    return None


def dlq_problem(value: bytes) -> str | None:
    """A DLQ record: reason, detail, source, and the original bytes in base64."""
    obj, problem = _object(value)
    if problem:
        return problem
    if not all(isinstance(obj.get(k), str) for k in ("reason", "detail", "source", "original_b64")):
        return "reason, detail, source and original_b64 must be strings"
    try:
        base64.b64decode(obj["original_b64"], validate=True)
    except (binascii.Error, ValueError):
        return "original_b64 is not base64"
    return None


def object_problem(value: bytes | None) -> str | None:
    """Any topic: the record must be one JSON object."""
    return _object(value)[1]


def _object(value: bytes | None) -> tuple[dict, str | None]:
    if value is None:
        return {}, "empty record"
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return {}, f"not JSON ({exc})"
    if not isinstance(obj, dict):
        return {}, "not a JSON object"
    return obj, None
