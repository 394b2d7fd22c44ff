"""Load shedding: a bounded queue in front of the scoring work of one worker process.

Scoring runs on the event loop, one request at a time. Without a bound, requests past
capacity wait in the loop's queue until every client times out (seconds, then minutes). Here
a request takes a turn from a FIFO gate; when ``max_queue`` requests already wait, or its own
wait passes ``max_wait_s``, it is refused at once (503 with Retry-After), so what is served
stays fast and what is refused is told so quickly. One client may hold at most
``max_per_client`` of the waiting places (beyond: 429, its own excess), so a client that
bursts cannot fill the queue and push everyone else into 503s.

The holder of the turn yields to the loop once before it works, so requests that arrived
meanwhile reach the gate and are counted; otherwise each would run to completion before the
next one is even looked at, and the queue would be invisible.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator


class Overloaded(Exception):
    """The request is refused to protect the ones being served.

    ``reason``: queue_full, queue_wait (the worker is overloaded: 503) or client_queue_full (this
    client already has its share of the queue waiting: 429).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Admission:
    def __init__(self, max_queue: int, max_wait_s: float, max_per_client: int | None = None) -> None:
        max_per_client = max_queue if max_per_client is None else max_per_client
        if max_queue < 1 or not max_wait_s > 0 or not 1 <= max_per_client <= max_queue:
            raise ValueError("serving.max_queue must be at least 1, serving.max_queue_wait_s positive and "
                             "serving.max_queue_per_client between 1 and serving.max_queue")
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self.max_per_client = max_per_client
        self.waiting = 0
        self._by_client: dict[str, int] = {}
        self._turn: asyncio.Lock | None = None  # made on first use, inside the serving loop

    @contextlib.asynccontextmanager
    async def turn(self, client: str = "") -> AsyncIterator[None]:
        """Hold the worker's turn for one request, or raise Overloaded without waiting long."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        if self.waiting >= self.max_queue:
            raise Overloaded("queue_full", f"{self.waiting} requests are already waiting")
        mine = self._by_client.get(client, 0)
        if mine >= self.max_per_client:
            raise Overloaded("client_queue_full", f"this client already has {mine} requests waiting")
        self.waiting += 1
        self._by_client[client] = mine + 1
        try:
            async with asyncio.timeout(self.max_wait_s):
                await self._turn.acquire()
        except TimeoutError:
            raise Overloaded("queue_wait", f"no turn within {self.max_wait_s:g} s") from None
        finally:
            self.waiting -= 1
            left = self._by_client[client] - 1
            if left:
                self._by_client[client] = left
            else:
                del self._by_client[client]
        try:
            await asyncio.sleep(0)  # let the requests that arrived meanwhile reach the gate
            yield
        finally:
            self._turn.release()
