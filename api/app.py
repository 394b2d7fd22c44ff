"""The prediction API (FastAPI): POST /predict, GET /health, /version, /metrics, /docs.

    uvicorn --factory api.app:create_app          # or: python scripts/serve_api.py

The model loads in the background after start-up: /health answers 503 until it is loaded
(and whenever none is), then 200. The served variant follows the rollback switch
(``api.serving``). One worker process per instance: metrics and the rate limiter live in
the process.
"""

# No `from __future__ import annotations` here: FastAPI reads the request model of /predict,
# which is built at run time from the feature list, from the live annotation.

import asyncio
import contextlib
import logging
import re
import subprocess
import time
import uuid
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from api.metrics import CONTENT_TYPE, ApiMetrics
from api.ratelimit import RateLimiter, retry_after_header
from api.schemas import ErrorResponse, PredictResponse, request_model
from api.serving import ModelHolder, holder_from_config
from common.config import REPO_ROOT, Config, load_config

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
BYTES_PER_VALUE = 256  # body size allowance per feature value before a request is refused unread (413)
PREDICT_ROUTE = "/predict"


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
    """What the routes share: config, the model holder, metrics and the rate limiter."""

    def __init__(self, cfg: Config, holder: ModelHolder, metrics: ApiMetrics) -> None:
        self.cfg = cfg
        self.holder = holder
        self.metrics = metrics
        self.limiter = RateLimiter(cfg.serving.rate_limit_per_minute)
        self.features = tuple(cfg.features.model_features)
        self.max_body_bytes = cfg.serving.max_batch_rows * len(self.features) * BYTES_PER_VALUE + 4096
        self.code_version = code_version()
        self.started_at = time.time()
        holder.listeners.append(metrics.model.on_change)
        if holder.current() is not None:  # loaded before the app was built
            metrics.model.on_change(None, holder.current())


class ServiceMiddleware:
    """Request id, rate limit, body size cap, metrics and one JSON log line per request.

    Pure ASGI (no BaseHTTPMiddleware): it adds well under a millisecond per request.
    """

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        client = scope["client"][0] if scope.get("client") else "unknown"
        method, path = scope["method"], scope["path"]
        status = {"code": 500}

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        refused = self._refuse(method, path, client, headers, request_id)
        try:
            if refused is not None:
                await refused(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self._account(scope, method, path, client, request_id, status["code"], time.perf_counter() - started)

    def _refuse(self, method: str, path: str, client: str, headers: dict, request_id: str) -> JSONResponse | None:
        """A 429 or 413 response decided before the body is read, or None."""
        if method != "POST" or path != PREDICT_ROUTE:
            return None
        service = self.service
        wait = service.limiter.take(client)
        if wait > 0:
            service.metrics.rate_limited.inc()
            return JSONResponse(
                {"detail": f"rate limit of {service.limiter.per_minute} requests a minute exceeded for this client; "
                           f"retry in {wait:.1f} s", "errors": [], "request_id": request_id},
                status_code=429, headers={"Retry-After": retry_after_header(wait)})
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > service.max_body_bytes:
            return JSONResponse(
                {"detail": f"request body of {int(length)} bytes exceeds {service.max_body_bytes} bytes; send at "
                           f"most {service.cfg.serving.max_batch_rows} rows", "errors": [], "request_id": request_id},
                status_code=413)
        return None

    def _account(self, scope: dict, method: str, path: str, client: str, request_id: str, status: int,
                 seconds: float) -> None:
        route = scope.get("route")
        # The route template; raw paths would make a label per URL. 429/413 never reach the router.
        template = getattr(route, "path", None) or (PREDICT_ROUTE if path == PREDICT_ROUTE else "unmatched")
        metrics = self.service.metrics
        metrics.requests.labels(template, method, str(status)).inc()
        metrics.latency.labels(template).observe(seconds)
        log.info("%s %s %d", method, path, status, extra={
            "request_id": request_id, "method": method, "path": path, "route": template, "status": status,
            "duration_ms": round(seconds * 1e3, 3), "client": client,
            "model_variant": scope.get("state", {}).get("model_variant"),
            "rows": scope.get("state", {}).get("rows"),
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
    )
    app.state.service = service
    app.add_middleware(ServiceMiddleware, service=service)
    errors = {422: {"model": ErrorResponse}, 429: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
              503: {"model": ErrorResponse}}

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = _error_items(exc)
        first = items[0] if items else {"field": "body", "message": "invalid"}
        more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
        return JSONResponse(status_code=422, content={
            "detail": f"{first['field']}: {first['message']}{more}", "errors": items[:50],
            "request_id": _request_id(request)})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, headers=exc.headers, content={
            "detail": str(exc.detail), "errors": [], "request_id": _request_id(request)})

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc, extra={"request_id": _request_id(request)})
        return JSONResponse(status_code=500, content={
            "detail": "internal error; quote the request id when reporting it", "errors": [],
            "request_id": _request_id(request)})

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


def _unavailable(holder: ModelHolder) -> str:
    errors = holder.status()["errors"]
    reason = errors.get(holder.desired) or "the model is still loading"
    return f"no model loaded ({reason}); see /health and docs/runbook.md"
