"""Builders for the record shapes the parser reads, shared by the unit tests.

Records are built as plain dicts and serialized with the standard ``json`` module, so the
tests never use the code under test to produce their inputs (except ``raw_record``, whose
own behavior is under test).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

DROP = object()  # a field value meaning "leave this key out"

FLAT_DEFAULTS: dict[str, Any] = {
    "timestamp": "2025-12-06T01:12:47.761914",
    "product_id": "BTC-USD",
    "price": "89387.88",
    "volume_24h": "8344.15909011",
    "best_bid": "89388.37",
    "best_ask": "89390",
}

TICKER_DEFAULTS: dict[str, Any] = {
    "type": "ticker",
    "product_id": "BTC-USD",
    "price": "67468.26",
    "volume_24_h": "3057.53218222",
    "best_bid": "67468.26",
    "best_ask": "67469.62",
    "best_bid_quantity": "0.00275905",
    "best_ask_quantity": "0.17950856",
}

FRAME_TS = "2026-04-05T22:35:13.92532762Z"


def _merge(defaults: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    out.update(fields)
    return {k: v for k, v in out.items() if v is not DROP}


def flat(**fields: Any) -> dict[str, Any]:
    """A flat ticker record as other recorders wrote them (numbers as strings by default)."""
    return _merge(FLAT_DEFAULTS, fields)


def ticker(**fields: Any) -> dict[str, Any]:
    """One ticker object as it sits inside an Advanced Trade frame."""
    return _merge(TICKER_DEFAULTS, fields)


def frame(
    tickers: list[dict[str, Any]] | None = None,
    *,
    timestamp: Any = FRAME_TS,
    sequence_num: Any = 2,
    channel: str = "ticker",
    events: list[Any] | None = None,
) -> dict[str, Any]:
    """A bare Advanced Trade frame; one ``update`` event holding ``tickers`` unless ``events`` given."""
    if events is None:
        events = [{"type": "update", "tickers": [ticker()] if tickers is None else tickers}]
    out: dict[str, Any] = {"channel": channel, "client_id": "", "timestamp": timestamp,
                           "sequence_num": sequence_num, "events": events}
    if timestamp is DROP:
        del out["timestamp"]
    return out


def line(obj: Any) -> bytes:
    """One NDJSON line (without the newline)."""
    return json.dumps(obj).encode()


@pytest.fixture
def rec() -> SimpleNamespace:
    """The record builders: ``rec.flat``, ``rec.ticker``, ``rec.frame``, ``rec.line``, ``rec.DROP``."""
    return SimpleNamespace(flat=flat, ticker=ticker, frame=frame, line=line, DROP=DROP,
                           FRAME_TS=FRAME_TS)
