"""A fake Coinbase Advanced Trade WebSocket endpoint on 127.0.0.1 for the streaming tests.

It checks the subscribe messages (one per channel, sent within 5 s), then plays back recorded
ticker frames, renumbering ``sequence_num`` per connection and interleaving ``heartbeats``
frames, with the faults a test asks for, one ``Plan`` per connection:

* ``refuse``: the WebSocket handshake is answered with HTTP 503;
* faults inside the stream: ``skip_sequence`` (a number is skipped), ``skip_heartbeat`` (a
  heartbeat counter is skipped), ``garbage`` (a text frame that is not JSON);
* how the connection ends: ``drop`` (TCP closed without a close frame), ``silence`` (the
  socket stays open, nothing is sent), ``hold`` (heartbeats only, until the client leaves).

Everything the server sent is recorded, so a test can check that every ticker frame sent on
an open connection arrived.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

SUBSCRIBE_WINDOW_S = 5.0
EXPECTED_CHANNELS = {"ticker", "heartbeats"}


def load_frames(path: Path) -> list[dict]:
    """The recorded ticker frames (the wrapped recording's payloads), in order."""
    frames = []
    with gzip.open(path, "rb") as handle:
        for line in handle:
            payload = orjson.loads(line)["payload"]
            if payload.get("channel") == "ticker":
                frames.append(payload)
    return frames


@dataclass
class Plan:
    """What one connection does."""

    refuse: bool = False
    count: int | None = None  # recorded frames to send on this connection (None: all that are left)
    faults: dict[int, str] = field(default_factory=dict)  # frame index in this connection -> fault
    end: str = "hold"  # "drop", "silence" or "hold"
    pace_s: float = 0.0  # pause between frames (0: as fast as the socket takes them)
    pause_at: dict[int, threading.Event] = field(default_factory=dict)  # index -> send heartbeats until set


@dataclass
class ConnectionLog:
    refused: bool = False
    subscriptions: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tickers_sent: int = 0
    heartbeats_sent: int = 0


class FakeCoinbase:
    """Run it with ``start()`` (returns the ws:// URL) and ``stop()``; thread-safe reads of the logs."""

    def __init__(self, frames: list[dict], plans: list[Plan], products: tuple[str, ...] = ("BTC-USD",),
                 heartbeat_every: int = 25, hold_heartbeat_s: float = 0.2) -> None:
        self.frames = frames
        self.plans = plans
        self.products = products
        self.heartbeat_every = heartbeat_every
        self.hold_heartbeat_s = hold_heartbeat_s
        self.connections: list[ConnectionLog] = []
        self.sent_tickers: list[bytes] = []  # exact text of every ticker frame sent
        self.all_sent = threading.Event()  # every recorded frame has been sent
        self._next_frame = 0
        self._heartbeat_counter = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self.url = ""

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> str:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError("fake Coinbase server did not start")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.run(self._main(ready))

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, process_request=self._process_request,
                         compression=None, ping_interval=None) as server:
            port = server.sockets[0].getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            ready.set()
            await self._stopped.wait()

    def _plan(self, index: int) -> Plan:
        return self.plans[index] if index < len(self.plans) else Plan()

    def _process_request(self, connection: ServerConnection, request):
        index = len(self.connections)
        plan = self._plan(index)
        self.connections.append(ConnectionLog(refused=plan.refuse))
        connection.plan_index = index  # type: ignore[attr-defined]
        if plan.refuse:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "try again later\n")
        return None

    # -- one connection ------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        index = ws.plan_index  # type: ignore[attr-defined]
        log = self.connections[index]
        plan = self._plan(index)
        try:
            if not await self._subscriptions(ws, log):
                return
            seq = 0
            await ws.send(self._dumps({"channel": "subscriptions", "client_id": "", "timestamp": _now(),
                                       "sequence_num": seq,
                                       "events": [{"subscriptions": {"ticker": list(self.products),
                                                                     "heartbeats": list(self.products)}}]}))
            end = len(self.frames) if plan.count is None else min(len(self.frames), self._next_frame + plan.count)
            position = 0
            while self._next_frame < end:
                gate = plan.pause_at.get(position)
                while gate is not None and not gate.is_set():
                    await asyncio.sleep(self.hold_heartbeat_s)
                    seq += 1
                    await self._heartbeat(ws, seq, log)
                fault = plan.faults.get(position)
                if fault == "garbage":
                    await ws.send("this is not JSON {")
                if fault == "skip_sequence":
                    seq += 1
                if position % self.heartbeat_every == 0 or fault == "skip_heartbeat":
                    seq += 1
                    await self._heartbeat(ws, seq, log, skip=fault == "skip_heartbeat")
                seq += 1
                frame = dict(self.frames[self._next_frame], sequence_num=seq)
                text = self._dumps(frame)
                await ws.send(text)
                self.sent_tickers.append(text.encode())
                log.tickers_sent += 1
                self._next_frame += 1
                position += 1
                if plan.pace_s:
                    await asyncio.sleep(plan.pace_s)
                elif position % 64 == 0:
                    await asyncio.sleep(0)
            if self._next_frame >= len(self.frames):
                self.all_sent.set()
            await self._end(ws, plan, seq, log)
        except ConnectionClosed:
            return

    async def _subscriptions(self, ws: ServerConnection, log: ConnectionLog) -> bool:
        """Both channels must be subscribed within the window, with the expected products."""
        try:
            async with asyncio.timeout(SUBSCRIBE_WINDOW_S):
                while {m.get("channel") for m in log.subscriptions} != EXPECTED_CHANNELS:
                    message = orjson.loads(await ws.recv())
                    log.subscriptions.append(message)
                    problem = _subscription_problem(message, self.products)
                    if problem:
                        log.errors.append(problem)
                        await ws.send(orjson.dumps({"type": "error", "message": problem}).decode())
                        await ws.close()
                        return False
        except TimeoutError:
            log.errors.append("no subscription within 5 s")
            await ws.close()
            return False
        return True

    async def _heartbeat(self, ws: ServerConnection, seq: int, log: ConnectionLog, skip: bool = False) -> None:
        self._heartbeat_counter += 2 if skip else 1
        await ws.send(self._dumps({"channel": "heartbeats", "client_id": "", "timestamp": _now(),
                                   "sequence_num": seq,
                                   "events": [{"current_time": _now(),
                                               "heartbeat_counter": self._heartbeat_counter}]}))
        log.heartbeats_sent += 1

    async def _end(self, ws: ServerConnection, plan: Plan, seq: int, log: ConnectionLog) -> None:
        if plan.end == "drop":
            await asyncio.sleep(0.3)  # let the client read what was sent: the drop loses nothing sent
            ws.transport.close()  # FIN without a WebSocket close frame
        elif plan.end == "silence":
            await ws.wait_closed()
        else:
            while True:
                await asyncio.sleep(self.hold_heartbeat_s)
                seq += 1
                await self._heartbeat(ws, seq, log)

    @staticmethod
    def _dumps(obj: dict) -> str:
        return orjson.dumps(obj).decode()


def _subscription_problem(message: dict, products: tuple[str, ...]) -> str | None:
    if message.get("type") != "subscribe":
        return f"expected a subscribe message, got {message!r}"
    channel = message.get("channel")
    if channel not in EXPECTED_CHANNELS:
        return f"unexpected channel {channel!r}"
    if channel == "ticker" and list(message.get("product_ids") or []) != list(products):
        return f"ticker product_ids {message.get('product_ids')!r} != {list(products)!r}"
    if "jwt" in message or "api_key" in message:
        return "credentials sent to a public channel"
    return None


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
