"""A small HTTP/1.1 load generator for the API's load test (scripts/load_test.py).

Written on asyncio streams rather than an HTTP client library because the generator shares
the machine with the server: a request here costs tens of microseconds of the client's CPU,
so offering several hundred requests a second leaves the cores to the server being measured.
It speaks just enough HTTP/1.1 for the API: keep-alive connections, Content-Length bodies,
one request in flight per connection.

Open loop: request i is due at start + i / rate whether or not earlier ones were answered,
and its latency counts from when it was due (so a slow server is not flattered by a client
that waits for it). Closed loop: N connections, each sending its next request when the last
one is answered; used to find what the server can serve.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

NO_ANSWER = 0  # status recorded when no HTTP answer came (timeout, reset, refused connection)
IDLE_REUSE_S = 2.0  # an idle connection older than this is closed, not reused: the server may be closing it


@dataclass
class Results:
    """Status and latency (seconds, from when the request was due) of every request of one phase."""

    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the phase, first request due to last answer
    max_lag_s: float = 0.0  # how far the client fell behind its own schedule

    def add(self, status: int, latency: float) -> None:
        self.statuses.append(status)
        self.latencies.append(latency)

    def count(self, predicate) -> int:
        return sum(1 for s in self.statuses if predicate(s))

    def latencies_of(self, predicate) -> np.ndarray:
        return np.array([t for s, t in zip(self.statuses, self.latencies) if predicate(s)], dtype=float)

    @property
    def sent(self) -> int:
        return len(self.statuses)


def served(status: int) -> bool:
    return 200 <= status < 300


def answered(status: int) -> bool:
    return status != NO_ANSWER


class Target:
    """Where requests go: host, port, the raw request bytes and the local address to send from."""

    def __init__(self, host: str, port: int, path: str, bodies: list[bytes], sources: list[str] | None = None,
                 headers: list[dict[str, str]] | None = None) -> None:
        """Request i sends ``bodies[i % len]`` with ``headers[i % len]`` (if given); each new connection is
        made from the next of ``sources`` (local addresses such as 127.0.1.7: on loopback, one client each)."""
        self.host, self.port, self.sources = host, port, sources or []
        extras = ["".join(f"{k}: {v}\r\n" for k, v in h.items()) for h in headers or [{}]]
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        self.requests = [
            f"{head}Content-Length: {len(bodies[i % len(bodies)])}\r\n{extras[i % len(extras)]}\r\n".encode()
            + bodies[i % len(bodies)] for i in range(max(len(bodies), len(extras)))]
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = deque()
        self.connections_opened = 0

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # uvicorn closes keep-alive connections idle for 5 s; one taken just as it does would fail
        # the request for a reason of the client's making, so old ones are dropped.
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since < IDLE_REUSE_S:
                return reader, writer
            writer.close()
        self.connections_opened += 1
        source = self.sources[self.connections_opened % len(self.sources)] if self.sources else None
        return await asyncio.open_connection(self.host, self.port, local_addr=(source, 0) if source else None)

    async def send(self, index: int) -> int:
        """One request; its status, or NO_ANSWER. The connection is reused unless the server closes it."""
        try:
            reader, writer = await self._connection()
        except OSError:  # refused, or no port left: no answer, as for a client
            return NO_ANSWER
        try:
            writer.write(self.requests[index % len(self.requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"content-length:")
            length = int(lower[at + 15:lower.index(b"\r\n", at)]) if at >= 0 else 0
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            writer.close()
            return NO_ANSWER
        except asyncio.CancelledError:  # timed out mid-request: the connection is in an unknown state
            writer.close()
            raise
        if b"connection: close" in lower:
            writer.close()
        else:
            self._idle.append((reader, writer, time.monotonic()))
        return status

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


async def _send_within(target: Target, index: int, timeout_s: float) -> int:
    try:
        async with asyncio.timeout(timeout_s):
            return await target.send(index)
    except TimeoutError:
        return NO_ANSWER


async def open_loop(target: Target, rate: float, count: int, timeout_s: float) -> Results:
    """``count`` requests due at ``rate`` a second."""
    loop = asyncio.get_running_loop()
    results = Results()
    start = loop.time()

    async def one(i: int, due: float) -> None:
        status = await _send_within(target, i, timeout_s)
        results.add(status, loop.time() - due)

    tasks = []
    for i in range(count):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        results.max_lag_s = max(results.max_lag_s, loop.time() - due)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    results.seconds = loop.time() - start
    target.close()
    return results


async def sequential(target: Target, count: int, timeout_s: float) -> Results:
    """``count`` requests one after the other on one connection (one client that waits for each answer)."""
    loop = asyncio.get_running_loop()
    results = Results()
    start = loop.time()
    for i in range(count):
        due = loop.time()
        status = await _send_within(target, i, timeout_s)
        results.add(status, loop.time() - due)
    results.seconds = loop.time() - start
    target.close()
    return results


async def closed_loop(target: Target, connections: int, seconds: float, timeout_s: float) -> Results:
    """``connections`` clients sending back to back for ``seconds``."""
    loop = asyncio.get_running_loop()
    results = Results()
    start = loop.time()
    deadline = start + seconds

    async def client(k: int) -> None:
        i = k
        while loop.time() < deadline:
            due = loop.time()
            status = await _send_within(target, i, timeout_s)
            results.add(status, loop.time() - due)
            i += connections

    await asyncio.gather(*(client(k) for k in range(connections)))
    results.seconds = loop.time() - start
    target.close()
    return results


def run(coro):
    """Run one phase in a fresh event loop (uvloop when installed, as the server uses)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
