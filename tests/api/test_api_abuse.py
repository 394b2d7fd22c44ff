"""Hostile clients on the real app: spoofed X-Forwarded-For, oversized and endless bodies (chunked or not),
floods past the queue. Each is refused with the right status, a request id and no 5xx, and costs
good clients nothing but their own turn."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.serving import holder_from_config
from serving_helpers import uvicorn_server, value


def _url_parts(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def stream_body(url: str, head: bytes, chunk: bytes, total: int, timeout_s: float = 30.0) -> tuple[bytes, int]:
    """Send ``head`` then ``chunk`` repeatedly up to ``total`` bytes from a thread while reading the answer.

    Returns (what the server answered, bytes the server let us send before it stopped reading).
    """
    sock = socket.create_connection(_url_parts(url), timeout=timeout_s)
    sent = {"bytes": 0}

    def sender() -> None:
        try:
            sock.sendall(head)
            while sent["bytes"] < total:
                sock.sendall(chunk)
                sent["bytes"] += len(chunk)
        except OSError:  # the server closed the connection: it stopped reading
            return

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    received = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
            status_line_done = b"\r\n\r\n" in received
            if status_line_done:
                _, headers, body = _response(received)
                if len(body) >= int(headers.get("content-length", "0")):
                    break
    except OSError:
        pass
    thread.join(timeout_s)
    sock.close()
    return received, sent["bytes"]


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


@pytest.fixture
def served(make_config):
    """A real uvicorn on loopback serving an app built from ``make_config(**overrides)``."""
    servers = []

    def start(**overrides):
        context = uvicorn_server(create_app(make_config(**overrides)))
        url = context.__enter__()
        servers.append(context)
        with httpx.Client(timeout=60) as client:
            for _ in range(600):
                if client.get(f"{url}/health").status_code == 200:
                    break
                threading.Event().wait(0.1)
        return url

    yield start
    for context in servers:
        context.__exit__(None, None, None)


def test_a_spoofed_forwarded_for_does_not_escape_the_rate_limit(make_config, start_client, rows, caplog):
    client = start_client(make_config(serving__rate_limit_per_minute=5), client=("203.0.113.9", 50000))
    statuses = [client.post("/predict", json={"rows": rows[:1]}, headers={"X-Forwarded-For": f"198.51.100.{i}"})
                .status_code for i in range(150)]
    assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}
    with caplog.at_level("INFO", logger="api.app"):
        client.post("/predict", json={"rows": rows[:1]}, headers={"X-Forwarded-For": "198.51.100.77"})
    line = [r for r in caplog.records if getattr(r, "path", None) == "/predict"][-1]
    assert line.client == "203.0.113.9" and line.peer == "203.0.113.9"  # the claim is not logged as the client


def test_a_trusted_proxy_names_the_client_and_clients_behind_it_have_their_own_budget(make_config, start_client,
                                                                                       rows):
    cfg = make_config(serving__rate_limit_per_minute=3, serving__trusted_proxies=["10.0.0.0/8"])
    proxy = start_client(cfg, client=("10.0.0.5", 50000))

    def post(forwarded: str) -> int:
        return proxy.post("/predict", json={"rows": rows[:1]}, headers={"X-Forwarded-For": forwarded}).status_code

    # The client wrote the left part; the proxy appended the address it saw, which is what counts.
    assert [post(f"192.0.2.{i}, 198.51.100.1") for i in range(4)] == [200, 200, 200, 429]
    assert [post("198.51.100.2") for _ in range(4)] == [200, 200, 200, 429]
    direct = start_client(cfg, client=("203.0.113.1", 50000))  # not a proxy: its header is only a claim
    assert [direct.post("/predict", json={"rows": rows[:1]}, headers={"X-Forwarded-For": f"192.0.2.{i}"})
            .status_code for i in range(4)] == [200, 200, 200, 429]


def test_a_chunked_body_past_the_cap_is_refused_while_it_streams(served):
    url = served()
    head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    total = 100 * 2**20
    answer, sent = stream_body(url, head, _chunked(b" " * 65536), total)
    status, headers, body = _response(answer)
    assert status == 413, answer[:300]
    assert json.loads(body)["request_id"] == headers["x-request-id"]
    assert "rows" in json.loads(body)["detail"] and headers["connection"] == "close"
    assert sent < total // 2  # the server stopped reading long before the end


def test_a_hundred_thousand_row_chunked_batch_is_refused_before_it_is_parsed(served, rows):
    url = served()
    row = json.dumps(rows[0]).encode()
    head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    batch = b'{"rows": [' + b",".join([row] * 100_000) + b"]}"
    answer, _ = stream_body(url, head + b"".join(_chunked(batch[i:i + 65536]) for i in range(0, len(batch), 65536)),
                            b"0\r\n\r\n", 5)
    status, headers, body = _response(answer)
    assert status == 413 and json.loads(body)["request_id"] == headers["x-request-id"]


def test_a_declared_oversized_body_is_refused_unread(client):
    response = client.post("/predict", content=b" " * 10_000_000, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["request_id"] == response.headers["x-request-id"]


def test_a_body_that_never_arrives_gets_408(served):
    url = served(serving__body_timeout_s=0.5)
    head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    answer, _ = stream_body(url, head, b"", 0)
    status, headers, body = _response(answer)
    assert status == 408 and json.loads(body)["request_id"] == headers["x-request-id"]


def test_many_small_invalid_rows_within_the_cap_are_one_bounded_422(client):
    response = client.post("/predict", content=b'{"rows": [' + b",".join([b"{}"] * 100_000) + b"]}",
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    body = response.json()
    assert "rows" in [e["field"] for e in body["errors"]] or body["errors"][0]["field"].startswith("rows")
    assert len(body["errors"]) <= 50 and body["request_id"]


@pytest.mark.parametrize("method, path, expected", [("GET", "/nowhere", 404), ("GET", "/predict", 405),
                                                    ("DELETE", "/health", 405)])
def test_router_errors_carry_the_request_id(client, method, path, expected):
    response = client.request(method, path)
    assert response.status_code == expected
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def _flood(app, rows: list[dict], count: int) -> list[httpx.Response]:
    """``count`` requests of 1000 rows at once, through the app's own event loop (no network)."""
    body = {"rows": (rows * (1000 // len(rows) + 1))[:1000]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60) as http:
        return await asyncio.gather(*(http.post("/predict", json=body) for _ in range(count)))


@pytest.mark.parametrize("overrides, reason", [
    ({"serving__max_queue": 2, "serving__max_queue_per_client": 2, "serving__max_queue_wait_s": 60}, "queue_full"),
    ({"serving__max_queue": 100, "serving__max_queue_per_client": 100, "serving__max_queue_wait_s": 0.001},
     "queue_wait"),
])
def test_past_the_queue_requests_are_refused_at_once_with_503_and_retry_after(make_config, rows, overrides,
                                                                               reason):
    cfg = make_config(**overrides)
    holder = holder_from_config(cfg)
    assert holder.sync(force=True)
    app = create_app(cfg, holder)
    responses = asyncio.run(_flood(app, rows, 12))
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 503}, statuses
    for refused in (r for r in responses if r.status_code == 503):
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["request_id"] == refused.headers["x-request-id"]
        assert "overloaded" in refused.json()["detail"]
    metrics = TestClient(app).get("/metrics").text
    assert value(metrics, "api_refused_total", reason=reason) == statuses.count(503)
    assert value(metrics, "api_requests_total", route="/predict", method="POST", status="503") == statuses.count(503)


def test_a_bursting_client_gets_429s_for_its_excess_and_leaves_room_for_others(make_config, rows):
    cfg = make_config(serving__max_queue=8, serving__max_queue_per_client=2, serving__max_queue_wait_s=60)
    holder = holder_from_config(cfg)
    assert holder.sync(force=True)
    app = create_app(cfg, holder)
    body = {"rows": (rows * 20)[:1000]}

    async def scenario():
        def client(host: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 1)), base_url="http://t",
                                     timeout=60)

        async with client("198.51.100.1") as bad, client("198.51.100.2") as good:
            burst = [bad.post("/predict", json=body) for _ in range(12)]
            return await asyncio.gather(*burst, good.post("/predict", json=body))

    *burst, good = asyncio.run(scenario())
    assert good.status_code == 200
    statuses = [r.status_code for r in burst]
    assert set(statuses) == {200, 429} and statuses.count(200) <= 3  # its turn and its two places
    refused = next(r for r in burst if r.status_code == 429)
    assert refused.headers["retry-after"] == "1" and "from this client" in refused.json()["detail"]


def test_docs_and_redoc_work_without_internet(client):
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        html = response.text
        references = re.findall(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", html)
        references += re.findall(r"""(?:url|spec-url)\s*:\s*['"]([^'"]+)['"]""", html)
        assert references, html
        assert not [r for r in references if "//" in r], references  # nothing from another host
        for ref in references:
            asset = client.get(ref)
            assert asset.status_code == 200 and len(asset.content) > 0, ref
    bundle = client.get("/docs-assets/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"] and len(bundle.content) > 500_000
