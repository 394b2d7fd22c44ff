"""Per-client rate limiting: a token bucket per client address.

A client may send ``per_minute`` requests in a burst and then one every ``60 / per_minute``
seconds. Buckets idle for more than a minute are full again and are dropped, so the table
stays as small as the set of recent clients.
"""

from __future__ import annotations

import math
import time
from typing import Callable


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last update)
        self._next_prune = 0.0

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, client: str) -> float:
        """0.0 when the request may go ahead; otherwise the seconds until it would."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        if now >= self._next_prune:
            self._prune(now)
        tokens, last = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_s)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.refill_per_s

    def _prune(self, now: float) -> None:
        full_after = 60.0
        self._buckets = {c: v for c, v in self._buckets.items() if now - v[1] < full_after}
        self._next_prune = now + full_after


def retry_after_header(wait_s: float) -> str:
    """Whole seconds, at least 1 (RFC 9110 Retry-After)."""
    return str(max(1, math.ceil(wait_s)))
