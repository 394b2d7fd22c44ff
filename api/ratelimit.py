"""Per-client rate limiting: a token bucket per client address, shared by the worker processes.

A client may send ``per_minute`` requests in a burst and then one every ``60 / per_minute``
seconds. The buckets live in a fixed table of slots (client hash, tokens, last update) in
memory; with several workers on one port the table is a file that every worker maps, and a
file lock makes each take atomic, so the limit holds per client for the whole instance, not
per worker. A bucket idle for a minute is full again, so its slot is free for another client.
When every slot a client may use is busy (more distinct clients in a minute than the table
holds), the slot idle longest is taken over: that client starts again with a full bucket.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import time
from pathlib import Path
from typing import Callable

_SLOT = struct.Struct("<Qdd")  # client hash (0 = free), tokens, last update (monotonic seconds)
DEFAULT_SLOTS = 1 << 16  # 1.5 MB
PROBES = 16  # slots a client may occupy, from its hash on


def create_table(path: Path, slots: int = DEFAULT_SLOTS) -> Path:
    """An empty shared table for the workers to map (made once, before they start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(slots * _SLOT.size)
    return path


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, table: Path | None = None,
                 slots: int = DEFAULT_SLOTS) -> None:
        """``table``: a file made by ``create_table`` shared with other processes; None = this process only.

        The clock must be the same for every process sharing a table (``time.monotonic`` is system-wide on Linux).
        """
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self._clock = clock
        self._fd: int | None = None
        if table is None:
            self._map = mmap.mmap(-1, slots * _SLOT.size)
        else:
            self._fd = os.open(table, os.O_RDWR)
            size = os.fstat(self._fd).st_size
            if size == 0 or size % _SLOT.size:
                os.close(self._fd)
                raise ValueError(f"{table} is not a rate limit table (size {size}); make it with create_table")
            self._map = mmap.mmap(self._fd, size)
        self.slots = len(self._map) // _SLOT.size

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, client: str) -> float:
        """0.0 when the request may go ahead; otherwise the seconds until it would."""
        if not self.enabled:
            return 0.0
        key = int.from_bytes(hashlib.blake2b(client.encode(), digest_size=8).digest(), "little") or 1
        if self._fd is None:
            return self._take(key)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            return self._take(key)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _take(self, key: int) -> float:
        now = self._clock()
        offset, tokens, last = self._find(key, now)
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_s)
        allowed = tokens >= 1.0
        _SLOT.pack_into(self._map, offset, key, tokens - 1.0 if allowed else tokens, now)
        return 0.0 if allowed else (1.0 - tokens) / self.refill_per_s

    def _find(self, key: int, now: float) -> tuple[int, float, float]:
        """(offset, tokens, last) of the client's slot, or of a free one with a full bucket."""
        full_after = 60.0
        start = key % self.slots
        free, oldest, oldest_last = -1, -1, math.inf
        for probe in range(PROBES):
            offset = ((start + probe) % self.slots) * _SLOT.size
            owner, tokens, last = _SLOT.unpack_from(self._map, offset)
            if owner == key:
                return offset, tokens, last
            if free < 0 and (owner == 0 or now - last >= full_after):  # free, or idle so long it is full anyway
                free = offset
            if last < oldest_last:
                oldest, oldest_last = offset, last
        return (free if free >= 0 else oldest), self.capacity, now

    def close(self) -> None:
        self._map.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def retry_after_header(wait_s: float) -> str:
    """Whole seconds, at least 1 (RFC 9110 Retry-After)."""
    return str(max(1, math.ceil(wait_s)))
