"""The prediction API (FastAPI): POST /predict, GET /health, /version, /metrics, /docs, /redoc.

    python scripts/serve_api.py [--workers N]      # or: uvicorn --factory api.app:create_app --no-proxy-headers

The model loads in the background after start-up: /health answers 503 until it is loaded
(and whenever none is), then 200. The served variant follows the rollback switch
(``api.serving``).

Before a /predict body is parsed, the middleware decides, cheapest first: the client (the peer
address; X-Forwarded-For only from ``serving.trusted_proxies``), its rate limit (429), the body
size as it streams in (413, whether or not Content-Length was sent), the time to receive it
(408), and a turn in the worker's bounded queue (503 with Retry-After when it is full or the
wait too long). Every error body carries the request id. With several workers
(scripts/serve_api.py --workers) the rate limit and the metrics are shared by the workers.
"""

# No `from __future__ import annotations` here: FastAPI reads the request model of /predict,
# which is built at run time from the feature list, from the live annotation.

import asyncio
import contextlib
import json
import logging
import os
import re
import subprocess
import time
import uuid
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.admission import Admission, Overloaded
from api.clients import ClientResolver
from api.docs import add_offline_docs
from api.metrics import CONTENT_TYPE, ApiMetrics, forget_dead_workers, multiprocess_dir
from api.ratelimit import RateLimiter, retry_after_header
from api.schemas import ErrorResponse, PredictResponse, request_model
from api.serving import ModelHolder, holder_from_config
from common.config import REPO_ROOT, Config, load_config

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
BYTES_PER_VALUE = 256  # body size allowance per feature value before a request is refused (413)
PREDICT_ROUTE = "/predict"
RATE_TABLE = "ratelimit.table"  # in the multiprocess metrics folder: the workers' shared buckets
WORKER_SETTINGS_ENV = "VOLSPIKE_API_SETTINGS"  # how scripts/serve_api.py hands its config to the workers
CLIENT_CLOSED = 499  # logged and counted when the client went away before its body arrived
# After refusing a body, read and drop at most this much more of it before closing, so the
# client reads the refusal instead of a connection reset (closing on unread data resets it).
LINGER_BYTES = 16 * 2**20
LINGER_S = 1.0
REFUSED = {408, 413, 429, 503}  # log lines of these are capped (RefusalLog); a 422 is always logged
REFUSAL_LINES_PER_S = 20  # a flood of refusals is counted in full but logged only this often


class RefusalLog:
    """At most ``per_second`` log lines a second for refused requests; the next line says how many were not logged."""

    def __init__(self, per_second: int = REFUSAL_LINES_PER_S) -> None:
        self.per_second = per_second
        self.second = 0
        self.lines = 0
        self.suppressed = 0

    def admit(self, now: float) -> int | None:
        """None: do not log this one; otherwise the number of refusals left unlogged before it."""
        second = int(now)
        if second != self.second:
            self.second, self.lines = second, 0
        if self.lines >= self.per_second:
            self.suppressed += 1
            return None
        self.lines += 1
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed


def code_version() -> str:
    """The package version plus the git commit when the code runs from a checkout."""
    try:
        base = version("volspike")
    except PackageNotFoundError:
        base = "unknown"
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+{out.stdout.strip()}" if out.returncode == 0 and out.stdout.strip() else base


class Service:
    """What the routes share: config, the model holder, metrics, the rate limiter and the queue."""

    def __init__(self, cfg: Config, holder: ModelHolder, metrics: ApiMetrics) -> None:
        self.cfg = cfg
        self.holder = holder
        self.metrics = metrics
        shared = multiprocess_dir()
        if shared:
            forget_dead_workers(shared)
        self.limiter = RateLimiter(cfg.serving.rate_limit_per_minute,
                                   table=Path(shared) / RATE_TABLE if shared else None)
        self.clients = ClientResolver(cfg.serving.trusted_proxies)
        self.admission = Admission(cfg.serving.max_queue, cfg.serving.max_queue_wait_s,
                                   cfg.serving.max_queue_per_client)
        self.features = tuple(cfg.features.model_features)
        self.max_body_bytes = cfg.serving.max_batch_rows * len(self.features) * BYTES_PER_VALUE + 4096
        self.code_version = code_version()
        self.started_at = time.time()
        holder.listeners.append(metrics.model.on_change)
        if holder.current() is not None:  # loaded before the app was built
            metrics.model.on_change(None, holder.current())


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


async def read_body(receive: Any, limit: int, timeout_s: float) -> bytes:
    """The whole request body, refused as soon as it passes ``limit`` bytes or ``timeout_s`` seconds.

    Raises BodyTooLarge, TimeoutError or ClientGone. Chunked bodies count the same as others.
    """
    chunks, size = [], 0
    async with asyncio.timeout(timeout_s):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _drain(receive: Any) -> None:
    """Drop what follows of a refused body, up to LINGER_BYTES or LINGER_S."""
    dropped = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_S):
            while dropped < LINGER_BYTES:
                message = await receive()
                dropped += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return


def _replay(body: bytes, receive: Any) -> Any:
    """A receive() that hands the app the body already read, then passes on (to see a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive_again() -> dict:
        return pending.pop() if pending else await receive()

    return receive_again


def _header_list(scope: dict, name: bytes) -> list[bytes]:
    return [v for k, v in scope.get("headers") or [] if k == name]


class ServiceMiddleware:
    """Request id, client identity, rate limit, body cap, load shedding, metrics, one JSON log line per request.

    Pure ASGI (no BaseHTTPMiddleware): it adds well under a millisecond per request.
    """

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service
        self.refusal_log = RefusalLog()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = next(iter(_header_list(scope, REQUEST_ID_HEADER.encode())), b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        peer = scope["client"][0] if scope.get("client") else "unknown"
        client = self.service.clients.client(peer, _header_list(scope, b"x-forwarded-for"))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        method, path = scope["method"], scope["path"]
        status = {"code": 500}

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            if method == "POST" and path == PREDICT_ROUTE:
                await self._predict(scope, receive, send_with_id, client, request_id, status)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self._account(scope, method, path, client, peer, request_id, status["code"],
                          time.perf_counter() - started)

    async def _predict(self, scope: dict, receive: Any, send: Any, client: str, request_id: str,
                       status: dict) -> None:
        """The checks before /predict is parsed and scored, cheapest first; each refusal is answered at once."""
        service = self.service
        serving = service.cfg.serving
        wait = service.limiter.take(client)
        if wait > 0:
            service.metrics.rate_limited.inc()
            await self._refuse(send, 429, "rate_limit", request_id,
                               f"rate limit of {service.limiter.per_minute} requests a minute exceeded for this "
                               f"client; retry in {wait:.1f} s", [(b"retry-after", retry_after_header(wait).encode())])
            return
        too_large = (f"request body exceeds {service.max_body_bytes} bytes; send at most "
                     f"{serving.max_batch_rows} rows")
        length = next(iter(_header_list(scope, b"content-length")), b"")
        if length.isdigit() and int(length) > service.max_body_bytes:
            await self._refuse(send, 413, "body_too_large", request_id, too_large, receive=receive)
            return
        try:
            body = await read_body(receive, service.max_body_bytes, serving.body_timeout_s)
        except BodyTooLarge:
            await self._refuse(send, 413, "body_too_large", request_id, too_large, receive=receive)
            return
        except TimeoutError:
            await self._refuse(send, 408, "body_timeout", request_id,
                               f"the request body did not arrive within {serving.body_timeout_s:g} s",
                               receive=receive)
            return
        except ClientGone:
            status["code"] = CLIENT_CLOSED
            return
        try:
            body.decode("utf-8")  # JSON travels as UTF-8 (RFC 8259); the framework would answer a vague 400
        except UnicodeDecodeError as exc:
            message = f"not UTF-8 at byte {exc.start}: send JSON encoded as UTF-8"
            await self._refuse(send, 422, "body_not_utf8", request_id, f"body: {message}",
                               errors=[{"field": "body", "message": message, "type": "json_invalid"}])
            return
        try:
            async with service.admission.turn(client):
                await self.app(scope, _replay(body, receive), send)
        except Overloaded as exc:
            mine = exc.reason == "client_queue_full"
            await self._refuse(send, 429 if mine else 503, exc.reason, request_id,
                               f"{'too many requests from this client at once' if mine else 'overloaded'} ({exc}); "
                               "retry in a second", [(b"retry-after", b"1")])

    async def _refuse(self, send: Any, code: int, reason: str, request_id: str, detail: str,
                      headers: list[tuple[bytes, bytes]] | None = None, receive: Any = None,
                      errors: list[dict] | None = None) -> None:
        """Answer ``code`` with a JSON error; with ``receive``, the body is left unread: close the connection."""
        self.service.metrics.refused.labels(reason).inc()
        body = orjson.dumps({"detail": detail, "errors": errors or [], "request_id": request_id})
        extra = [*(headers or []), *([(b"connection", b"close")] if receive else [])]
        await send({"type": "http.response.start", "status": code, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body, "more_body": receive is not None})
        if receive is not None:
            await _drain(receive)
            await send({"type": "http.response.body", "body": b""})

    def _account(self, scope: dict, method: str, path: str, client: str, peer: str, request_id: str, status: int,
                 seconds: float) -> None:
        route = scope.get("route")
        # The route template; raw paths would make a label per URL. Refusals never reach the router.
        template = getattr(route, "path", None) or (PREDICT_ROUTE if path == PREDICT_ROUTE else "unmatched")
        metrics = self.service.metrics
        metrics.requests.labels(template, method, str(status)).inc()
        metrics.latency.labels(template).observe(seconds)
        metrics.queue.set(self.service.admission.waiting)
        extra = {}
        if status in REFUSED and template == PREDICT_ROUTE:
            suppressed = self.refusal_log.admit(time.monotonic())
            if suppressed is None:
                return
            if suppressed:
                extra["refusals_not_logged"] = suppressed
        state = scope.get("state", {})
        log.info("%s %s %d", method, path, status, extra={
            "request_id": request_id, "method": method, "path": path, "route": template, "status": status,
            "duration_ms": round(seconds * 1e3, 3), "client": client, "peer": peer,
            "model_variant": state.get("model_variant"), "rows": state.get("rows"), **extra,
        })


def _field(loc: tuple | list) -> str:
    """('body', 'rows', 0, 'rv_60s') -> 'rows[0].rv_60s'."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _error_items(exc: RequestValidationError) -> list[dict[str, str]]:
    items = []
    for err in exc.errors():
        kind, message = str(err.get("type", "invalid")), str(err.get("msg", "invalid"))
        if kind == "json_invalid":  # its loc is ('body', character position), not a field
            position = err.get("loc", ("body", "?"))[-1]
            items.append({"field": "body", "message": f"{message} at character {position}", "type": kind})
        else:
            items.append({"field": _field(err.get("loc", ())), "message": message, "type": kind})
    return items


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def _follow_switch(holder: ModelHolder, every_s: float) -> None:
    """Load the model, then follow the variant file; loading runs in a thread, requests go on."""
    while True:
        await asyncio.to_thread(holder.sync)
        await asyncio.sleep(every_s)


def create_app(cfg: Config | None = None, holder: ModelHolder | None = None,
               metrics: ApiMetrics | None = None) -> FastAPI:
    """Build the app; with no arguments everything comes from config.yaml and the environment."""
    cfg = cfg or load_config()
    holder = holder or holder_from_config(cfg)
    service = Service(cfg, holder, metrics or ApiMetrics())
    features = service.features
    PredictRequest = request_model(features, cfg.serving.max_batch_rows, example={f: 0.0 for f in features})

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        task = asyncio.create_task(_follow_switch(holder, cfg.serving.reload_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="Volatility spike API",
        version=service.code_version,
        description="Probability that the next 60 s of a product's midprice are volatile "
                    "(sigma_future_60s >= tau), from one feature row per tick. See docs/runbook.md.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served by add_offline_docs, with no CDN
    )
    app.state.service = service
    add_offline_docs(app)
    app.add_middleware(ServiceMiddleware, service=service)
    errors = {code: {"model": ErrorResponse} for code in (408, 413, 422, 429, 503)}

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = _error_items(exc)
        first = items[0] if items else {"field": "body", "message": "invalid"}
        more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
        return JSONResponse(status_code=422, content={
            "detail": f"{first['field']}: {first['message']}{more}", "errors": items[:50],
            "request_id": _request_id(request)})

    @app.exception_handler(StarletteHTTPException)  # also FastAPI's HTTPException, and the router's 404/405
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, headers=exc.headers, content={
            "detail": str(exc.detail), "errors": [], "request_id": _request_id(request)})

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        request_id = _request_id(request)
        log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
        # Answered outside the middleware, so the request id header is set here.
        return JSONResponse(status_code=500, headers={REQUEST_ID_HEADER: request_id or ""}, content={
            "detail": "internal error; quote the request id when reporting it", "errors": [],
            "request_id": request_id})

    @app.post(PREDICT_ROUTE, response_model=PredictResponse, responses=errors,
              summary="Spike probability for each feature row")
    async def predict(body: PredictRequest, request: Request) -> Response:  # type: ignore[valid-type]
        served = holder.current()  # one read: a switch during this request does not affect it
        if served is None:
            raise HTTPException(503, detail=_unavailable(holder))
        model = served.model
        matrix = np.array([[getattr(row, f) for f in model.features] for row in body.rows], dtype=float)
        frame = pd.DataFrame(matrix, columns=list(model.features))
        frame.insert(0, "product_id", [row.product_id for row in body.rows])
        scores, sigmas = model.score(frame), model.sigma(frame)
        request.state.model_variant, request.state.rows = served.variant, len(scores)
        service.metrics.observe_scores(served.variant, scores, model.threshold)
        values = scores.tolist()
        # Serialized here (the shape is PredictResponse, documented above): FastAPI would
        # validate and encode the response model again, a measurable share of a 5 ms request.
        return Response(orjson.dumps({
            "scores": values, "sigmas": sigmas.tolist(), "alerts": [s >= model.threshold for s in values],
            "threshold": model.threshold,
            "model_variant": served.variant, "model": model.name, "version": model.version,
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}), media_type="application/json")

    @app.get("/health", summary="200 when a model is loaded and requests are scored, else 503",
             responses={503: {"description": "no model loaded"}})
    async def health() -> JSONResponse:
        served = holder.current()
        status = holder.status()
        body = {"status": "ok" if served else "unavailable", **status,
                "uptime_s": round(time.time() - service.started_at, 1)}
        if served is not None and holder.desired != served.variant:
            body["status"] = "degraded"  # still serving, but not the variant asked for
        if served is None:
            body["detail"] = _unavailable(holder)
        return JSONResponse(body, status_code=200 if served else 503)

    @app.get("/version", summary="Served model (name, registry version and alias, tau, threshold, alert budget and "
                                 "what to expect from its alerts, features), code")
    async def version_info() -> dict:
        served = holder.current()
        info = served.describe() if served else {"model_variant": None}
        return {**info, "desired_variant": holder.desired, "code_version": service.code_version,
                "api_features": list(features), "rate_limit_per_minute": service.limiter.per_minute,
                "max_batch_rows": cfg.serving.max_batch_rows}

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    return app


def worker_app() -> FastAPI:
    """The app of one worker process started by scripts/serve_api.py (``uvicorn --factory``).

    The parent resolved the config file and its flags; the same resolution runs here, so every
    worker serves exactly what the command line asked for.
    """
    settings = json.loads(os.environ.get(WORKER_SETTINGS_ENV) or "{}")
    return create_app(load_config(settings.get("config"), overrides=settings.get("overrides") or {}))


def _unavailable(holder: ModelHolder) -> str:
    errors = holder.status()["errors"]
    reason = errors.get(holder.desired) or "the model is still loading"
    return f"no model loaded ({reason}); see /health and docs/runbook.md"
