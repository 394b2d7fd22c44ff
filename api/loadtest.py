"""The parts of the API load test (scripts/load_test.py): the API under test, the phases, the hostile cases.

Every phase is bounded in requests and time and talks to the server over loopback HTTP only.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import orjson
import pandas as pd

from api.loadgen import NO_ANSWER, Results, Target, closed_loop, open_loop, run, sequential, served
from common.config import REPO_ROOT
from common.net import free_port

CLIENTS = [f"127.0.1.{i}" for i in range(1, 65)]  # the load comes from many clients, as it would in service


class LoadTestError(RuntimeError):
    """Something that stops the test; the message says what to do."""


def loopback_only(url: str) -> str:
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LoadTestError(f"--url {url}: only loopback addresses (127.0.0.1, localhost) may be load tested")
    return url.rstrip("/")


def feature_rows(path: Path, features: tuple[str, ...], count: int) -> list[dict]:
    """Real, complete feature rows (rows with a missing value are not valid input)."""
    if not path.is_file():
        raise LoadTestError(f"{path} does not exist: run `make demo` (or scripts/replay.py) first, or pass --features")
    table = pd.read_parquet(path, columns=list(features)).dropna()
    if table.empty:
        raise LoadTestError(f"{path}: no complete feature rows")
    return table.sample(count, random_state=0, replace=len(table) < count).to_dict(orient="records")


def payloads(rows: list[dict], batch_rows: int) -> list[bytes]:
    return [orjson.dumps({"rows": rows[i:i + batch_rows]}) for i in range(0, len(rows) - batch_rows + 1, batch_rows)]



class ApiProcess:
    """scripts/serve_api.py on a free loopback port, its JSON log in a temporary file."""

    def __init__(self, workdir: Path, serve_options: dict[str, object], rate_limit: int | None, workers: int) -> None:
        """``serve_options``: scripts/serve_api.py flags and values (None = its default), e.g. {"--variant": "ml"}."""
        self.port = free_port()
        self.workers = workers
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"api-{self.port}.log"
        command = [sys.executable, str(REPO_ROOT / "scripts" / "serve_api.py"), "--port", str(self.port),
                   "--variant-file", str(workdir / f"variant-{self.port}")]
        options = {**serve_options, "--workers": workers, "--rate-limit": rate_limit}
        for flag, value in options.items():
            if value is not None:
                command += [flag, str(value)]
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        with open(self.log_path, "wb") as out:
            self.popen = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env={**env, "PYTHONUNBUFFERED": "1"})

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise LoadTestError(f"the API exited with code {self.popen.returncode}: "
                                    f"{self.log_path.read_text()[-1500:]}")
            try:
                healthy = httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                healthy = False  # not listening yet
            if healthy and self.workers_ready():
                return
            time.sleep(0.25)
        raise LoadTestError(f"the API was not healthy within {timeout_s:.0f} s: {self.log_path.read_text()[-1500:]}")

    def workers_ready(self) -> bool:
        """Every worker has loaded its model (/health answers from whichever worker is free)."""
        return len(self.pids()) >= self.workers

    def pids(self) -> list[int]:
        """The processes that serve requests (the workers, or the server itself): those that loaded a model."""
        pids = re.findall(r'"message":"loaded the [^"]*","pid":(\d+)', self.log_path.read_text())
        return sorted({int(p) for p in pids})

    def memory_mb(self) -> tuple[float, float]:
        """(current RSS, peak RSS) summed over the serving processes, in MB."""
        rss = peak = 0.0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            rss += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
            peak += int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
        return rss, peak

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def fuzz(base: str, examples: int, workdir: Path) -> dict:
    """schemathesis over HTTP against the running server: how many cases, how many 5xx."""
    tool = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if tool is None:
        return {"error": "schemathesis is not installed"}
    ndjson = workdir / "fuzz.ndjson"
    command = [tool, "run", f"{base}/openapi.json", "--checks", "not_a_server_error", "--max-examples", str(examples),
               "--generation-deterministic", "--report", "ndjson", "--report-ndjson-path", str(ndjson),
               "--phases", "examples,coverage,fuzzing"]
    started = time.monotonic()
    # Run in the temporary folder: schemathesis leaves a cache folder where it runs.
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=workdir)
    statuses: dict[str, int] = {}
    if ndjson.exists():
        for match in re.finditer(r'"status_code":\s*(\d{3})', ndjson.read_text()):
            statuses[match.group(1)] = statuses.get(match.group(1), 0) + 1
    return {"exit": done.returncode, "seconds": time.monotonic() - started, "statuses": statuses,
            "summary": [line for line in done.stdout.splitlines() if "passed" in line or "failed" in line][-3:]}


@dataclass
class Phase:
    name: str
    offered: float | None  # requests a second; None for closed loop
    results: Results


def target(base: str, bodies: list[bytes], sources: list[str] | None = None,
            headers: list[dict[str, str]] | None = None) -> Target:
    parsed = urlparse(base)
    return Target(parsed.hostname or "127.0.0.1", parsed.port or 80, "/predict", bodies, sources or CLIENTS, headers)


def measure_capacity(base: str, bodies: list[bytes], connections: int, seconds: float, timeout: float) -> Phase:
    results = run(closed_loop(target(base, bodies), connections, seconds, timeout))
    return Phase(f"capacity probe ({connections} clients back to back)", None, results)


def open_phase(base: str, bodies: list[bytes], name: str, rate: float, count: int, timeout: float) -> Phase:
    return Phase(name, rate, run(open_loop(target(base, bodies), rate, count, timeout)))


async def _stream(base: str, head: bytes, body_chunks, timeout_s: float) -> tuple[int, int, float]:
    """Send a body chunk by chunk while reading the answer: (status, bytes sent, seconds to the answer).

    As an HTTP client should, it stops sending once an answer came: a server that refused the body
    reads on only so far (a lingering close), and data sent past that resets the connection, which
    can discard the answer before it is read.
    """
    parsed = urlparse(base)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    sent = 0
    started = time.monotonic()

    async def sender() -> None:
        nonlocal sent
        try:
            writer.write(head)
            for chunk in body_chunks:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                await asyncio.sleep(0)  # drain() need not yield: let the reader see an early answer
        except OSError:  # the server stopped reading and closed
            return

    task = asyncio.create_task(sender())
    status = NO_ANSWER
    try:
        async with asyncio.timeout(timeout_s):
            answer = await reader.readuntil(b"\r\n\r\n")
            status = int(answer[9:12])
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        pass
    seconds = time.monotonic() - started
    task.cancel()
    writer.close()
    return status, sent, seconds


def _chunked(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


@dataclass
class HostileCase:
    """One hostile case and how the server took it; ``errors_5xx`` leaves out a flood's own 503s."""

    case: str
    outcome: str
    memory: str = ""
    errors_5xx: int = 0
    good_served: tuple[int, int] | None = None  # (served, sent) of the good client beside a flood


def abuse(api: ApiProcess, rows: list[dict], capacity: float, duration: float, timeout: float) -> list[HostileCase]:
    """The hostile cases against an API with the configured rate limit."""
    base = api.url
    out = []
    limit = httpx.get(f"{base}/version", timeout=5).json().get("rate_limit_per_minute")
    one_row = orjson.dumps({"rows": rows[:1]})

    spoof = run(sequential(target(base, [one_row], ["127.0.0.2"],
                                   [{"X-Forwarded-For": f"198.51.100.{i}"} for i in range(150)]), 150, timeout))
    out.append(HostileCase(
        f"150 requests, each with another spoofed X-Forwarded-For, one client (limit {limit}/min)",
        f"{spoof.count(served)} served, {spoof.count(lambda s: s == 429)} refused 429, "
        f"{spoof.count(lambda s: s >= 500)} 5xx in {spoof.seconds:.1f} s (the bucket refills {limit / 60:.2f} a second)",
        errors_5xx=spoof.count(lambda s: s >= 500)))

    head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    before = api.memory_mb()
    status, sent, seconds = run(_stream(base, head, _chunked(b" " * (100 * 2**20)), 60))
    out.append(HostileCase("100 MB chunked body", f"{status} after {seconds * 1e3:.0f} ms; {sent / 2**20:.1f} MB "
                           "sent before the server closed", _memory(before, api.memory_mb()), int(status >= 500)))

    batch = b'{"rows": [' + b",".join([orjson.dumps(r) for r in (rows * (100_000 // len(rows) + 1))[:100_000]]) + b"]}"
    before = api.memory_mb()
    status, sent, seconds = run(_stream(base, head, _chunked(batch), 60))
    out.append(HostileCase(f"100k-row chunked batch ({len(batch) / 2**20:.0f} MB)",
                           f"{status} after {seconds * 1e3:.0f} ms; {sent / 2**20:.1f} MB sent",
                           _memory(before, api.memory_mb()), int(status >= 500)))

    flood_rate = 4 * capacity
    good_rate = 5.0

    async def both() -> tuple[Results, Results]:
        flood = open_loop(target(base, [one_row], ["127.0.0.3"]), flood_rate, int(flood_rate * duration), timeout)
        good = open_loop(target(base, [one_row], ["127.0.0.4"]), good_rate, int(good_rate * duration), timeout)
        return tuple(await asyncio.gather(flood, good))

    flood, good = run(both())
    p95 = np.percentile(good.latencies_of(served), 95) * 1e3 if good.count(served) else float("nan")
    good_5xx = good.count(lambda s: s >= 500)
    flood_5xx = flood.count(lambda s: s >= 500 and s != 503)
    out.append(HostileCase(
        f"a good client at {good_rate:g}/s while another floods at {flood_rate:.0f}/s for {duration:g} s",
        f"good client: {good.count(served)}/{good.sent} served{_others(good)}, p95 {p95:.1f} ms, "
        f"{good_5xx} 5xx; flood: {flood.count(lambda s: s == 429)} refused 429, "
        f"{flood.count(lambda s: s == 503)} refused 503, {flood.count(served)} served, "
        f"{flood_5xx} other 5xx; client lag {good.max_lag_s * 1e3:.0f} ms "
        f"(good), {flood.max_lag_s * 1e3:.0f} ms (flood)",
        errors_5xx=good_5xx + flood_5xx, good_served=(good.count(served), good.sent)))
    return out


def _others(results: Results) -> str:
    """' (others: 429 x2, no answer x1)' for what was not served, '' when everything was."""
    counts: dict[str, int] = {}
    for status in results.statuses:
        if not served(status):
            name = "no answer" if status == NO_ANSWER else str(status)
            counts[name] = counts.get(name, 0) + 1
    return f" (others: {', '.join(f'{k} x{v}' for k, v in sorted(counts.items()))})" if counts else ""


def _memory(before: tuple[float, float], after: tuple[float, float]) -> str:
    return f"RSS {before[0]:.0f} -> {after[0]:.0f} MB, peak {before[1]:.0f} -> {after[1]:.0f} MB"
