"""Load test of POST /predict on loopback: latency percentiles, throughput and errors per request rate.

    python scripts/load_test.py                              # 25, 50, 100, 200 req/s, 10 s each
    python scripts/load_test.py --rates 100 --duration 30 --no-report
    python scripts/load_test.py --url http://127.0.0.1:8000  # a server that is already running

Unless --url is given, it starts the API (scripts/serve_api.py, one uvicorn worker) on a free
127.0.0.1 port with its own variant file, and stops it at the end. Requests are sent open
loop at each fixed rate (a slow answer does not delay the next request), each with
--batch-rows real feature rows. Bounded: at most --max-requests in all, --duration seconds per
rate, a --timeout per request. The rate limiter stays on but is set above the offered load
(--rate-limit, default 2 x 60 x the highest rate a minute), so it costs what it costs and
refuses nothing. Figures go to reports/benchmarks.md (section "api").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import orjson
import pandas as pd

from common.benchreport import REPORT, machine_line, write_section
from common.config import REPO_ROOT, ConfigError, load_config
from common.logs import setup_logging

log = logging.getLogger("scripts.load_test")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[25, 50, 100, 200], help="requests a second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate (default 10)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="requests in all, at most (default 20000)")
    parser.add_argument("--batch-rows", type=int, default=1, help="feature rows per request (default 1)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    parser.add_argument("--features", type=Path, help="feature table to take rows from (default: paths.features)")
    parser.add_argument("--url", help="test this running API (loopback only) instead of starting one")
    parser.add_argument("--rate-limit", type=int, help="per-minute limit of the started API (default 120 x max rate)")
    parser.add_argument("--variant", choices=("ml", "baseline"), default="ml", help="variant of the started API")
    parser.add_argument("--model-uri", help="ml model of the started API (default: its config)")
    parser.add_argument("--artifacts-dir", type=Path, help="local models of the started API (default: its config)")
    parser.add_argument("--mlflow-uri", help="MLflow tracking URI of the started API (default: its config)")
    parser.add_argument("--report", type=Path, default=REPORT, help="benchmark report (default %(default)s)")
    parser.add_argument("--no-report", action="store_true", help="print only")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


class LoadTestError(RuntimeError):
    """Something that stops the test; the message says what to do."""


@dataclass
class RateResult:
    offered: float
    sent: int
    ok: int
    status_4xx: int
    status_5xx: int
    failed: int  # no HTTP answer (timeout, connection error)
    seconds: float
    latencies_ms: np.ndarray
    max_send_lag_ms: float  # how far the client fell behind its own schedule

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return (self.sent - self.ok) / self.sent if self.sent else 0.0


def loopback_only(url: str) -> str:
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LoadTestError(f"--url {url}: only loopback addresses (127.0.0.1, localhost) may be load tested")
    return url.rstrip("/")


def payloads(path: Path, features: tuple[str, ...], batch_rows: int, count: int = 500) -> list[bytes]:
    """Request bodies of real, complete feature rows (rows with a missing value are not valid input)."""
    if not path.is_file():
        raise LoadTestError(f"{path} does not exist: run `make demo` (or scripts/replay.py) first, or pass --features")
    table = pd.read_parquet(path, columns=list(features)).dropna()
    if table.empty:
        raise LoadTestError(f"{path}: no complete feature rows")
    rows = table.sample(min(len(table), count * batch_rows), random_state=0, replace=len(table) < count * batch_rows)
    records = rows.to_dict(orient="records")
    starts = range(0, len(records) - batch_rows + 1, batch_rows)
    return [orjson.dumps({"rows": records[i:i + batch_rows]}) for i in starts]


async def _one(client: httpx.AsyncClient, url: str, body: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        response = await client.post(url, content=body, headers={"content-type": "application/json"})
        status = response.status_code
    except httpx.HTTPError:
        status = 0
    return status, (time.perf_counter() - started) * 1e3


async def run_rate(base: str, rate: float, count: int, bodies: list[bytes], timeout: float) -> RateResult:
    """Send ``count`` requests at ``rate`` per second, open loop."""
    url = f"{base}/predict"
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks, max_lag = [], 0.0
        for i in range(count):
            target = start + i / rate
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            max_lag = max(max_lag, loop.time() - target)
            tasks.append(asyncio.create_task(_one(client, url, bodies[i % len(bodies)])))
        results = await asyncio.gather(*tasks)
        seconds = loop.time() - start
    statuses = np.array([s for s, _ in results])
    ok = statuses // 100 == 2
    return RateResult(
        offered=rate, sent=count, ok=int(ok.sum()), status_4xx=int((statuses // 100 == 4).sum()),
        status_5xx=int((statuses // 100 == 5).sum()), failed=int((statuses == 0).sum()), seconds=seconds,
        latencies_ms=np.array([ms for (s, ms) in results if s // 100 == 2]), max_send_lag_ms=max_lag * 1e3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiProcess:
    """scripts/serve_api.py on a free loopback port, its JSON log in a temporary file."""

    def __init__(self, args: argparse.Namespace, rate_limit: int, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "api.log"
        command = [sys.executable, str(REPO_ROOT / "scripts" / "serve_api.py"), "--port", str(self.port),
                   "--rate-limit", str(rate_limit), "--variant", args.variant,
                   "--variant-file", str(workdir / "model_variant")]
        for flag, value in (("--model-uri", args.model_uri), ("--artifacts-dir", args.artifacts_dir),
                            ("--mlflow-uri", args.mlflow_uri), ("--config", args.config)):
            if value is not None:
                command += [flag, str(value)]
        with open(self.log_path, "wb") as out:
            self.popen = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_healthy(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise LoadTestError(f"the API exited with code {self.popen.returncode}: "
                                    f"{self.log_path.read_text()[-1500:]}")
            try:
                healthy = httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                healthy = False  # not listening yet
            if healthy:
                return
            time.sleep(0.25)
        raise LoadTestError(f"the API was not healthy within {timeout_s:.0f} s: {self.log_path.read_text()[-1500:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def report_body(results: list[RateResult], info: dict, batch_rows: int, rate_limit: str, started_api: bool) -> str:
    lines = [
        "## API load test (`scripts/load_test.py`)",
        "",
        machine_line(),
        "",
        f"POST /predict on 127.0.0.1, {batch_rows} real feature row(s) per request, open-loop arrivals at each "
        f"rate; model `{info.get('model_name')}` version {info.get('model_version')} "
        f"(variant {info.get('model_variant')}){', one uvicorn worker started by the script' if started_api else ''}; "
        f"rate limiter {rate_limit}. Client and server share the machine's cores. "
        "Latency is measured by the client, request sent to response read, successful requests only.",
        "",
        "| offered req/s | sent | achieved req/s | p50 ms | p95 ms | p99 ms | max ms | error rate | 4xx | 5xx | "
        "no answer | client lag ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        top = float(r.latencies_ms.max()) if len(r.latencies_ms) else float("nan")
        lines.append(f"| {r.offered:g} | {r.sent} | {r.throughput:.1f} | {r.percentile(50):.1f} | "
                     f"{r.percentile(95):.1f} | {r.percentile(99):.1f} | {top:.1f} | {r.error_rate:.2%} | "
                     f"{r.status_4xx} | {r.status_5xx} | {r.failed} | {r.max_send_lag_ms:.1f} |")
    at100 = next((r for r in results if r.offered == 100), None)
    if at100 is not None:
        verdict = "met" if at100.percentile(95) < 20 and at100.status_5xx == 0 else "NOT met"
        lines += ["", f"Target p95 < 20 ms at 100 req/s with zero 5xx: {verdict} "
                      f"(p95 {at100.percentile(95):.2f} ms, {at100.status_5xx} 5xx)."]
    lines += ["", "Rerun: `make bench` or `.venv/bin/python scripts/load_test.py`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if any(r <= 0 for r in args.rates) or args.duration <= 0 or args.batch_rows < 1 or args.max_requests < 1:
        print("load_test: --rates, --duration, --batch-rows and --max-requests must be positive", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        bodies = payloads(args.features or Path(cfg.paths.features), tuple(cfg.features.model_features),
                          args.batch_rows)
        rate_limit = args.rate_limit if args.rate_limit is not None else int(120 * max(args.rates))
        with tempfile.TemporaryDirectory(prefix="load_test_") as tmp:
            api = None if args.url else ApiProcess(args, rate_limit, Path(tmp))
            try:
                if api is not None:
                    api.wait_healthy()
                base = loopback_only(args.url) if args.url else api.url
                results, info = run_all(base, args, bodies)
            finally:
                if api is not None:
                    api.stop()
    except (ConfigError, LoadTestError) as exc:
        print(f"load_test: {exc}", file=sys.stderr)
        return 1
    limit_text = (f"at {info.get('rate_limit_per_minute')} requests a minute per client (above the offered load)"
                  if info.get("rate_limit_per_minute") else "off")
    body = report_body(results, info, args.batch_rows, limit_text, started_api=not args.url)
    print(body)
    if not args.no_report:
        write_section("api", body, report=args.report)
        print(f"\nwritten to {args.report}")
    return 0


def run_all(base: str, args: argparse.Namespace, bodies: list[bytes]) -> tuple[list[RateResult], dict]:
    info = httpx.get(f"{base}/version", timeout=5.0).json()
    asyncio.run(run_rate(base, 50, 100, bodies, args.timeout))  # warm-up, not reported
    budget, results = args.max_requests, []
    for rate in args.rates:
        count = min(int(rate * args.duration), budget)
        if count < 1:
            break
        budget -= count
        result = asyncio.run(run_rate(base, rate, count, bodies, args.timeout))
        log.info("%g req/s: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, %d ok, %d 5xx, %d no answer", rate,
                 result.percentile(50), result.percentile(95), result.percentile(99), result.ok, result.status_5xx,
                 result.failed)
        results.append(result)
    return results, info


if __name__ == "__main__":
    sys.exit(main())
