"""Time stamps as the project writes them: ISO-8601 UTC with microseconds and a ``Z``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def format_time_ns(ts_ns: int) -> str:
    """ns since epoch -> ISO-8601 UTC with microseconds, for logs and raw records."""
    return (_EPOCH + timedelta(microseconds=ts_ns // 1000)).isoformat().replace("+00:00", "Z")
