"""An offline market: a WebSocket server that speaks the Advanced Trade protocol and plays recordings.

Clients subscribe as to Coinbase (one ``subscribe`` message per channel, ``ticker`` and
``heartbeats``, within 5 s, no credentials); the server confirms with a ``subscriptions`` frame,
then sends the recorded ticker frames of the subscribed products, numbered with ``sequence_num``
per connection, with a ``heartbeats`` frame every second (its ``heartbeat_counter`` counts per
server). ``speed`` paces the frames by their recorded times (1 = real time, 20 = twenty times
faster, 0 = as fast as the socket takes them).

Recordings of every form replay reads are accepted (``frames_from_lines``): Advanced Trade
frames (bare, wrapped, or as the project's raw records) are sent as recorded; flat ticker
records and Coinbase Exchange ``ticker`` messages become Advanced Trade ticker frames built
from their parsed ticks, so the features a client computes equal those of the recording.

For drills and tests, one ``Plan`` per connection injects faults: a refused handshake, a
skipped ``sequence_num`` or heartbeat, hostile frames (``HOSTILE``), a dropped or silent socket,
or a pause until an event is set. Everything sent is recorded in ``sent_tickers``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Iterable, Iterator

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from features.replay import read_lines
from features.ticks import Tick, parse_line, parse_time_ns

SUBSCRIBE_WINDOW_S = 5.0
CHANNELS = {"ticker", "heartbeats"}
HEARTBEAT_S = 1.0
# Frames no client should choke on: each is sent before the frame at the fault's index.
HOSTILE = {
    "garbage": "this is not JSON {",
    "big_garbage": "x" * 900_000,  # not JSON, 900 KB: a third more once base64-encoded
    "oversize": orjson.dumps({"channel": "ticker", "timestamp": "2026-04-05T22:35:14Z", "events": [
        {"type": "update", "tickers": [{"type": "ticker", "product_id": "BTC-USD", "price": "1", "best_bid": "1",
                                        "best_ask": "2", "pad": "x" * 1_100_000}]}]}).decode(),
    "events_not_a_list": '{"channel":"ticker","events":5}',
    "subscriptions_odd": '{"channel":"subscriptions","events":{"a":1}}',
    "ticker_without_tickers": '{"channel":"ticker","events":[{"type":"update","tickers":[{"price":"1"}]}]}',
}


def format_frame_time(ts_ns: int) -> str:
    """Advanced Trade's frame time: ISO-8601 UTC with nanoseconds and a Z."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def ticker_frame(tick: Tick) -> dict:
    """The Advanced Trade ticker frame that carries ``tick`` (numbers as the shortest exact strings)."""
    ticker = {"type": "ticker", "product_id": tick.product_id, "price": repr(tick.price),
              "best_bid": repr(tick.best_bid), "best_ask": repr(tick.best_ask)}
    if tick.volume_24h is not None:
        ticker["volume_24_h"] = repr(tick.volume_24h)
    if tick.best_bid_qty is not None:
        ticker["best_bid_quantity"] = repr(tick.best_bid_qty)
    if tick.best_ask_qty is not None:
        ticker["best_ask_quantity"] = repr(tick.best_ask_qty)
    return {"channel": "ticker", "timestamp": format_frame_time(tick.ts_ns), "sequence_num": 0,
            "events": [{"type": "update", "tickers": [ticker]}]}


def _recorded_frame(obj: dict) -> dict | None:
    """The Advanced Trade frame inside a recorded line, if the line holds one."""
    if isinstance(obj.get("frame"), dict):
        return obj["frame"]
    if isinstance(obj.get("payload"), dict):
        return obj["payload"]
    if "channel" in obj and "events" in obj:
        return obj
    return None


def frames_from_lines(lines: Iterable[bytes]) -> Iterator[dict]:
    """Ticker frames to send for recorded lines of any form; lines without a valid tick are left out."""
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        frame = _recorded_frame(obj) if isinstance(obj, dict) else None
        if frame is not None:
            if frame.get("channel") == "ticker" and parse_line(orjson.dumps(frame)).ticks:
                yield frame
            continue
        for tick in parse_line(line).ticks:
            yield ticker_frame(tick)


def recorded_frames(paths: Iterable[Path]) -> list[dict]:
    """Every ticker frame to play from recorded files, in file order (InputFileError on a bad file)."""
    return [frame for path in paths for frame in frames_from_lines(read_lines(path))]


def frame_products(frame: dict) -> set[str]:
    return {t.get("product_id") for e in frame.get("events", []) for t in e.get("tickers", [])}


def frame_time_ns(frame: dict) -> int | None:
    try:
        return parse_time_ns(frame.get("timestamp"))
    except ValueError:
        return None


@dataclass
class Plan:
    """What one connection does (the default: every frame left, then heartbeats until the client leaves)."""

    refuse: bool = False
    count: int | None = None  # frames to send on this connection (None: all that are left)
    faults: dict[int, str] = field(default_factory=dict)  # index in this connection -> fault
    end: str = "hold"  # "drop" (TCP closed, no close frame), "silence" (nothing more), "hold" (heartbeats)
    pace_s: float = 0.0  # a pause after every frame, on top of ``speed``
    pause_at: dict[int, threading.Event] = field(default_factory=dict)  # index -> heartbeats only until set


@dataclass
class ConnectionLog:
    refused: bool = False
    subscriptions: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tickers_sent: int = 0
    heartbeats_sent: int = 0


class MarketServer:
    """Run with ``start()`` (returns the ws:// URL) and ``stop()``; the logs are safe to read meanwhile."""

    def __init__(self, frames: list[dict], plans: list[Plan] | None = None, speed: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0, heartbeat_s: float = HEARTBEAT_S,
                 loop_forever: bool = False) -> None:
        self.frames = frames
        self.plans = plans or []
        self.speed = speed
        self.host = host
        self.port = port
        self.heartbeat_s = heartbeat_s
        self.loop_forever = loop_forever
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
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main(ready)), daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"the market server did not start on {self.host}:{self.port}")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with serve(self._handler, self.host, self.port, process_request=self._process_request,
                         compression=None, ping_interval=None, max_size=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.url = f"ws://{self.host}:{self.port}"
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
            products = await self._subscriptions(ws, log)
            if products is None:
                return
            seq = 0
            await ws.send(_dumps({"channel": "subscriptions", "client_id": "", "timestamp": _now(),
                                  "sequence_num": seq,
                                  "events": [{"subscriptions": {"ticker": sorted(products),
                                                                "heartbeats": sorted(products)}}]}))
            seq = await self._play(ws, plan, products, log, seq)
            await self._end(ws, plan, seq, log)
        except ConnectionClosed:
            return

    async def _play(self, ws: ServerConnection, plan: Plan, products: set[str], log: ConnectionLog, seq: int) -> int:
        """Send this connection's share of the frames, paced, with heartbeats and the planned faults."""
        position = 0
        started = time.monotonic()
        first_ns: int | None = None
        next_heartbeat = started
        while plan.count is None or position < plan.count:
            if self._next_frame >= len(self.frames):
                if not self.loop_forever:
                    break
                self._next_frame, started, first_ns = 0, time.monotonic(), None
            frame = self.frames[self._next_frame]
            gate = plan.pause_at.get(position)
            while gate is not None and not gate.is_set():
                await asyncio.sleep(self.heartbeat_s / 5)
                seq = await self._heartbeat(ws, seq + 1, log)
            if self.speed > 0:
                ts = frame_time_ns(frame)
                if ts is not None:
                    first_ns = ts if first_ns is None else first_ns
                    due = started + (ts - first_ns) / 1e9 / self.speed
                    while (wait := due - time.monotonic()) > 0:
                        until_heartbeat = next_heartbeat - time.monotonic()
                        if until_heartbeat <= 0:
                            next_heartbeat += self.heartbeat_s
                            seq = await self._heartbeat(ws, seq + 1, log)
                        else:
                            await asyncio.sleep(min(wait, until_heartbeat))
            fault = plan.faults.get(position)
            if fault in HOSTILE:
                await ws.send(HOSTILE[fault])
            if fault == "skip_sequence":
                seq += 1
            if time.monotonic() >= next_heartbeat or fault == "skip_heartbeat":
                next_heartbeat = time.monotonic() + self.heartbeat_s
                seq = await self._heartbeat(ws, seq + 1, log, skip=fault == "skip_heartbeat")
            self._next_frame += 1
            position += 1
            if not frame_products(frame) & products:
                continue
            seq += 1
            text = _dumps({**frame, "sequence_num": seq})
            await ws.send(text)
            self.sent_tickers.append(text.encode())
            log.tickers_sent += 1
            if plan.pace_s:
                await asyncio.sleep(plan.pace_s)
            elif position % 64 == 0:
                await asyncio.sleep(0)
        if self._next_frame >= len(self.frames):
            self.all_sent.set()
        return seq

    async def _subscriptions(self, ws: ServerConnection, log: ConnectionLog) -> set[str] | None:
        """Both channels must be subscribed within the window, for the same products; None if not."""
        try:
            async with asyncio.timeout(SUBSCRIBE_WINDOW_S):
                while {m.get("channel") for m in log.subscriptions} != CHANNELS:
                    message = orjson.loads(await ws.recv())
                    problem = _subscription_problem(message)
                    if not problem:
                        log.subscriptions.append(message)
                    else:
                        log.errors.append(problem)
                        await ws.send(_dumps({"type": "error", "message": problem}))
                        await ws.close()
                        return None
        except (TimeoutError, orjson.JSONDecodeError) as exc:
            log.errors.append("no subscription within 5 s" if isinstance(exc, TimeoutError) else f"not JSON: {exc}")
            await ws.close()
            return None
        return {p for m in log.subscriptions if m["channel"] == "ticker" for p in m["product_ids"]}

    async def _heartbeat(self, ws: ServerConnection, seq: int, log: ConnectionLog, skip: bool = False) -> int:
        self._heartbeat_counter += 2 if skip else 1
        await ws.send(_dumps({"channel": "heartbeats", "client_id": "", "timestamp": _now(), "sequence_num": seq,
                              "events": [{"current_time": _now(), "heartbeat_counter": self._heartbeat_counter}]}))
        log.heartbeats_sent += 1
        return seq

    async def _end(self, ws: ServerConnection, plan: Plan, seq: int, log: ConnectionLog) -> None:
        if plan.end == "drop":
            await asyncio.sleep(0.3)  # let the client read what was sent: the drop loses nothing sent
            ws.transport.close()  # FIN without a WebSocket close frame
        elif plan.end == "silence":
            await ws.wait_closed()
        else:
            while True:
                await asyncio.sleep(self.heartbeat_s)
                seq = await self._heartbeat(ws, seq + 1, log)


def _subscription_problem(message: object) -> str | None:
    if not isinstance(message, dict) or message.get("type") != "subscribe":
        return f"expected a subscribe message, got {message!r}"[:300]
    channel = message.get("channel")
    if channel not in CHANNELS:
        return f"unexpected channel {channel!r}"
    products = message.get("product_ids")
    if not isinstance(products, list) or not products or not all(isinstance(p, str) for p in products):
        return "product_ids must be a non-empty list of product ids"
    if "jwt" in message or "api_key" in message:
        return "credentials sent to a public channel"
    return None


def _dumps(obj: dict) -> str:
    return orjson.dumps(obj).decode()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
