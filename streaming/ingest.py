"""Coinbase Advanced Trade WebSocket -> raw records (Kafka ``ticks.raw``, and a disk mirror).

``FrameHandler`` is the per-frame logic with no network: it classifies a frame, detects
gaps (``sequence_num`` and ``heartbeat_counter`` jumps) and turns each ticker frame into the
project's raw record, marking the first record of each product after a gap so the features
start a new segment there. ``Ingestor`` owns the connection: subscribe, watchdog, capped
exponential backoff with jitter, resubscription after every reconnect, and a clean stop.

What goes where:
  * ticker frames -> ``ticks.raw`` (key = product id) and the mirror, identical bytes;
  * heartbeats -> liveness and gap detection only (they carry no product; a gap they reveal
    travels on the next ticker record as ``"gap": "heartbeat"``);
  * subscriptions confirmations -> logged;
  * frames that are not JSON objects, malformed frames of any shape, frames too large for
    Kafka (their size and a prefix), and ``error`` frames -> ``ticks.dlq`` with the reason,
    counted by reason. No frame, however malformed, stops the ingestor.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
import websocket

from common.kafka import MAX_RECORD_BYTES, dlq_record
from features.ticks import raw_record
from streaming.journal import Journal
from streaming.publisher import Publisher
from streaming.sinks import RotatingMirror

log = logging.getLogger(__name__)

CHANNELS = ("ticker", "heartbeats")
RECV_POLL_S = 0.2  # how often the receive loop looks at the clock, the watchdog and the stop flag
BACKOFF_RESET_S = 10.0  # a connection that stayed up this long resets the backoff
PRODUCT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # what a product id (and a Kafka key) may be
MAX_FRAME_BYTES = MAX_RECORD_BYTES - 1024  # room for the raw record's receive time and gap mark
STATUS_EVERY_S = 10.0  # a status line this often while running


@dataclass
class Counters:
    """The final JSON line of ws_ingest.py."""

    frames: int = 0  # every data frame received
    tickers: int = 0  # ticker frames
    heartbeats: int = 0
    published: int = 0  # raw records acknowledged by Kafka (directly or from the journal)
    spooled: int = 0  # records that waited in the journal for the broker
    spool_pending: int = 0  # still unacknowledged in the journal at exit (the next run sends them first)
    recovered: int = 0  # unacknowledged records an earlier run left in the journal
    mirrored: int = 0  # raw records written to data/raw
    connections: int = 0  # successful WebSocket connections (each one subscribes)
    reconnects: int = 0  # connection attempts after the first
    watchdog_timeouts: int = 0
    sequence_gaps: int = 0
    heartbeat_gaps: int = 0
    rejected: int = 0  # frames sent to the DLQ (see rejections)
    rejections: dict = field(default_factory=dict)  # reason -> count
    refused: int = 0  # records the broker refused (sent to the DLQ instead)
    dlq: int = 0  # DLQ records acknowledged by Kafka
    other_frames: dict = field(default_factory=dict)  # channel -> count (subscriptions, ...)


@dataclass
class Outgoing:
    topic_role: str  # "raw" or "dlq"
    key: bytes | None
    value: bytes


class FrameHandler:
    """Classify frames, track sequence and heartbeat gaps, build raw and DLQ records."""

    def __init__(self, products: tuple[str, ...], counters: Counters) -> None:
        self.products = products
        self.counters = counters
        self._pending_gap: dict[str, str] = {}  # product -> why its next record starts a segment
        self._last_seq: int | None = None
        self._last_heartbeat: int | None = None

    def connection_started(self, first: bool) -> None:
        """A new connection: per-connection counters restart; frames may have been missed."""
        self._last_seq = None
        self._last_heartbeat = None
        self._mark_gap("start" if first else "reconnect")

    def _mark_gap(self, reason: str) -> None:
        for product in (*self.products, *self._pending_gap):
            self._pending_gap.setdefault(product, reason)

    def handle(self, data: bytes, received_ns: int) -> list[Outgoing]:
        """Everything one frame produces (usually one raw record, or nothing); never raises."""
        self.counters.frames += 1
        if len(data) > MAX_FRAME_BYTES:
            return [self._reject("oversize", f"{len(data)} bytes, more than the {MAX_FRAME_BYTES} Kafka takes",
                                 data, received_ns)]
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return [self._reject("invalid_json", str(exc), data, received_ns)]
        if not isinstance(frame, dict):
            return [self._reject("invalid_json", f"expected an object, got {type(frame).__name__}",
                                 data, received_ns)]
        try:
            return self._classify(frame, data, received_ns)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:  # a shape no rule foresaw
            log.exception("malformed frame")
            return [self._reject("malformed_frame", f"{type(exc).__name__}: {exc}", data, received_ns)]

    def _classify(self, frame: dict[str, Any], data: bytes, received_ns: int) -> list[Outgoing]:
        counters = self.counters
        self._check_sequence(frame.get("sequence_num"))
        channel = frame.get("channel")
        if channel == "ticker":
            return [self._ticker(frame, data, received_ns)]
        if channel == "heartbeats":
            counters.heartbeats += 1
            self._check_heartbeat(frame)
            return []
        if frame.get("type") == "error":
            log.error("server error frame: %s", data[:500].decode("utf-8", "replace"))
            return [self._reject("server_error", str(frame.get("message", ""))[:500], data, received_ns)]
        name = str(channel if channel is not None else frame.get("type"))[:100]
        counters.other_frames[name] = counters.other_frames.get(name, 0) + 1
        if channel == "subscriptions":
            log.info("subscriptions confirmed: %s", _subscriptions(frame))
        return []

    def _ticker(self, frame: dict[str, Any], data: bytes, received_ns: int) -> Outgoing:
        products = _ticker_products(frame)
        if not products:
            return self._reject("no_tickers", "a ticker frame without any ticker of a product", data, received_ns)
        self.counters.tickers += 1
        gap = None
        for product in products:
            reason = self._pending_gap.pop(product, None)
            gap = gap or reason
        return Outgoing("raw", products[0].encode(), raw_record(data, received_ns, gap))

    def _check_sequence(self, seq: Any) -> None:
        if type(seq) is not int:
            return
        last = self._last_seq
        self._last_seq = seq
        if last is not None and seq != last + 1:
            self.counters.sequence_gaps += 1
            log.warning("sequence gap: %d after %d (%+d frames)", seq, last, seq - last - 1)
            self._mark_gap("sequence")

    def _check_heartbeat(self, frame: dict[str, Any]) -> None:
        for event in _events(frame):
            counter = event.get("heartbeat_counter")
            if isinstance(counter, str) and counter.isdigit():
                counter = int(counter)
            if type(counter) is not int:
                continue
            last = self._last_heartbeat
            self._last_heartbeat = counter
            if last is not None and counter != last + 1:
                self.counters.heartbeat_gaps += 1
                log.warning("heartbeat gap: counter %d after %d", counter, last)
                self._mark_gap("heartbeat")

    def _reject(self, reason: str, detail: str, data: bytes, received_ns: int) -> Outgoing:
        self.counters.rejected += 1
        self.counters.rejections[reason] = self.counters.rejections.get(reason, 0) + 1
        log.warning("rejected frame (%s): %s: %r", reason, detail, data[:200])
        return Outgoing("dlq", None, dlq_record(reason, detail, data, "ws_ingest", received_ns))


def _events(frame: dict[str, Any]) -> list[dict]:
    """The frame's events that are objects (anything else in ``events`` is ignored)."""
    events = frame.get("events")
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


def _ticker_products(frame: dict[str, Any]) -> list[str]:
    """Product ids of a ticker frame's tickers, first-seen order (Coinbase sends one per frame)."""
    seen: list[str] = []
    for event in _events(frame):
        tickers = event.get("tickers")
        for ticker in tickers if isinstance(tickers, list) else ():
            product = ticker.get("product_id") if isinstance(ticker, dict) else None
            if isinstance(product, str) and PRODUCT_ID.fullmatch(product) and product not in seen:
                seen.append(product)
    return seen


def _subscriptions(frame: dict[str, Any]) -> Any:
    events = _events(frame)
    return events[0].get("subscriptions") if events else frame.get("events")


def subscribe_messages(products: tuple[str, ...]) -> list[str]:
    """One subscribe message per channel, as the Advanced Trade endpoint expects (no credentials)."""
    return [orjson.dumps({"type": "subscribe", "product_ids": list(products), "channel": channel}).decode()
            for channel in CHANNELS]


@dataclass(frozen=True)
class IngestSettings:
    url: str
    products: tuple[str, ...]
    seconds: float  # run this long (then stop cleanly)
    watchdog_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 10.0


class Ingestor:
    """The WebSocket loop: connect, subscribe, receive, reconnect, until the time is up or stop()."""

    def __init__(self, settings: IngestSettings, handler: FrameHandler,
                 emit: Callable[[Outgoing], None], status: Callable[[], str] | None = None) -> None:
        self.settings = settings
        self.handler = handler
        self.counters = handler.counters
        self.emit = emit
        self.status = status
        self._next_status = time.monotonic() + STATUS_EVERY_S
        self._stop = threading.Event()

    def _log_status(self, now: float) -> None:
        if self.status is not None and now >= self._next_status:
            self._next_status = now + STATUS_EVERY_S
            log.info("status: %s", self.status())

    def stop(self) -> None:
        """Ask the loop to finish (signal handlers call this); it returns within RECV_POLL_S."""
        self._stop.set()

    def run(self) -> None:
        s = self.settings
        deadline = time.monotonic() + s.seconds
        failures = 0
        attempt = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            if attempt:
                self.counters.reconnects += 1
            attempt += 1
            started = time.monotonic()
            ws = self._connect(deadline)
            if ws is not None:
                self.counters.connections += 1
                self.handler.connection_started(first=self.counters.connections == 1)
                self._receive(ws, deadline)
            if self._stop.is_set() or time.monotonic() >= deadline:
                break
            failures = 0 if ws is not None and time.monotonic() - started >= BACKOFF_RESET_S else failures + 1
            delay = min(s.backoff_max_s, s.backoff_initial_s * 2 ** (failures - 1))
            delay *= random.uniform(0.5, 1.0)  # jitter: many clients do not reconnect in lockstep
            log.info("reconnecting in %.2f s", delay)
            self._stop.wait(min(delay, max(0.0, deadline - time.monotonic())))

    def _connect(self, deadline: float) -> websocket.WebSocket | None:
        s = self.settings
        timeout = max(0.1, min(s.connect_timeout_s, deadline - time.monotonic()))
        try:
            ws = websocket.create_connection(s.url, timeout=timeout, skip_utf8_validation=True,
                                             enable_multithread=False)
            for message in subscribe_messages(s.products):
                ws.send(message)
        except (websocket.WebSocketException, OSError) as exc:
            log.warning("cannot connect to %s: %s", s.url, exc)
            return None
        log.info("connected to %s, subscribed to %s for %s", s.url, ", ".join(CHANNELS), ", ".join(s.products))
        return ws

    def _receive(self, ws: websocket.WebSocket, deadline: float) -> None:
        """Read frames until the connection ends, the watchdog fires, the time is up or stop()."""
        watchdog_s = self.settings.watchdog_s
        ws.settimeout(min(RECV_POLL_S, watchdog_s))
        last_frame = time.monotonic()
        handle, emit = self.handler.handle, self.emit
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= deadline:
                    return
                self._log_status(now)
                try:
                    opcode, data = ws.recv_data()
                except websocket.WebSocketTimeoutException:
                    if time.monotonic() - last_frame >= watchdog_s:
                        self.counters.watchdog_timeouts += 1
                        log.warning("no frame for %.1f s: reconnecting", watchdog_s)
                        return
                    continue
                received_ns = time.time_ns()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    log.warning("server closed the connection")
                    return
                if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    continue
                last_frame = time.monotonic()
                for out in handle(data, received_ns):
                    emit(out)
        except (websocket.WebSocketException, OSError) as exc:
            log.warning("connection lost: %s", exc or type(exc).__name__)
        finally:
            try:
                ws.close(timeout=0.5)
            except (websocket.WebSocketException, OSError) as exc:
                log.debug("closing the socket: %s", exc)


def counters_json(counters: Counters) -> str:
    return orjson.dumps(asdict(counters)).decode()


def default_journal_path(spool_dir: Path, products: tuple[str, ...]) -> Path:
    """One journal per product set, so two ingestors for different pairs never share one."""
    return spool_dir / f"ingest-{'_'.join(sorted(products))}.journal"


@dataclass(frozen=True)
class Outputs:
    """Where raw records go: a mirror directory and/or a Kafka broker (with its topics)."""

    raw_dir: Path | None  # None: no disk mirror
    bootstrap: str | None  # None: no Kafka
    topic_raw: str = "ticks.raw"
    topic_dlq: str = "ticks.dlq"
    topics: dict = field(default_factory=dict)  # name -> partitions, created when missing
    journal_path: Path | None = None


def run_ingest(settings: IngestSettings, outputs: Outputs,
               on_ready: Callable[[Ingestor], None] | None = None) -> Counters:
    """Ingest until the time is up or ``stop()``; deliver or journal everything; return the counters.

    ``on_ready`` receives the Ingestor before it connects (the script installs its signal
    handlers there). Raises JournalBusy when another ingestor uses the same journal.
    """
    counters = Counters()
    handler = FrameHandler(settings.products, counters)
    publisher = None
    if outputs.bootstrap is not None:
        assert outputs.journal_path is not None
        publisher = Publisher(outputs.bootstrap, outputs.topics, Journal(outputs.journal_path), outputs.topic_dlq)
        counters.recovered = publisher.stats.recovered
        if counters.recovered:
            log.info("%d records an earlier run did not deliver wait in %s; they go first",
                     counters.recovered, outputs.journal_path)
        publisher.start()
    mirror = RotatingMirror(outputs.raw_dir) if outputs.raw_dir is not None else None
    rejected = RotatingMirror(outputs.raw_dir / "rejected", prefix="dlq") if outputs.raw_dir is not None else None
    topic_of = {"raw": outputs.topic_raw, "dlq": outputs.topic_dlq}

    def emit(out: Outgoing) -> None:
        if publisher is not None:  # the journal first: what Kafka will get is on disk before the mirror
            publisher.submit(topic_of[out.topic_role], out.key, out.value)
        if out.topic_role == "raw" and mirror is not None:
            mirror.write(out.value)
            counters.mirrored += 1
        elif out.topic_role == "dlq" and rejected is not None:
            rejected.write(out.value)

    def status() -> str:
        line = (f"frames {counters.frames}, tickers {counters.tickers}, rejected {counters.rejected}, "
                f"connections {counters.connections}")
        if publisher is not None:
            state = "online" if publisher.online else "offline, journaling"
            line += (f"; Kafka {state}: published {publisher.stats.acked[outputs.topic_raw]}, "
                     f"spooled {publisher.stats.spooled}, waiting {publisher.journal.pending_bytes} bytes")
        return line

    ingestor = Ingestor(settings, handler, emit, status)
    if on_ready is not None:
        on_ready(ingestor)
    try:
        ingestor.run()
    finally:
        if publisher is not None:
            publisher.close()
            stats = publisher.stats
            counters.published = stats.acked[outputs.topic_raw]
            counters.dlq = stats.acked[outputs.topic_dlq]
            counters.refused = stats.refused
            counters.spooled = stats.spooled
            counters.spool_pending = publisher.pending
        for sink in (mirror, rejected):
            if sink is not None:
                sink.close()
    return counters
