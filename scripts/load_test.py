"""Load and abuse test of POST /predict on loopback: capacity, latency, goodput past capacity, hostile clients.

    python scripts/load_test.py                              # start the API, run every phase, write the report
    python scripts/load_test.py --workers 2 --duration 20
    python scripts/load_test.py --url http://127.0.0.1:8000 --no-abuse --no-report   # a running server

Phases, each bounded in requests and time:
  1. fuzz: schemathesis against the running server over HTTP; counts 5xx answers;
  2. capacity: closed loop (--connections clients back to back) for --capacity-seconds: what it serves;
  3. target: one-row requests at --target-rate a second, open loop: the latency objective;
  4. overload: open loop at 1x, 2x and 4x capacity (--multiples): goodput, refusals (503), and whether
     every request was answered within 1 s;
  5. abuse (only for an API the script starts, with the configured rate limit): spoofed X-Forwarded-For,
     a 100 MB chunked body, a 100k-row chunked batch (status, bytes read, server memory), and a good
     client's service while another floods.

Unless --url is given, it starts the API (scripts/serve_api.py, --workers processes) on a free
127.0.0.1 port with its own variant file; phases 1 to 4 run with the rate limit above the offered
load (it costs what it costs and refuses nothing), phase 5 against a second API with the
configured limit. Figures go to the benchmark report, section "api" or "api-N-workers"
(reports/benchmarks.local.md; `make bench-record` writes the committed reports/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
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

from api.loadgen import NO_ANSWER, Results, Target, answered, closed_loop, open_loop, run, sequential, served
from common.benchreport import REPORT, machine_line, write_section
from common.config import REPO_ROOT, ConfigError, load_config
from common.logs import setup_logging

log = logging.getLogger("scripts.load_test")

ANSWER_WITHIN_S = 1.0  # the overload target: every request answered (served or refused) within this
P95_TARGET_MS = 20.0
CLIENTS = [f"127.0.1.{i}" for i in range(1, 65)]  # the load comes from many clients, as it would in service


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-rate", type=float, default=100.0, help="rate of the latency objective (100/s)")
    parser.add_argument("--multiples", type=float, nargs="+", default=[1, 2, 4], help="overload rates, x capacity")
    parser.add_argument("--capacity", type=float, help="requests a second to take as capacity (default: measured)")
    parser.add_argument("--capacity-seconds", type=float, default=5.0, help="closed-loop probe length (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="closed-loop clients (default 8)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per open-loop phase (default 10)")
    parser.add_argument("--max-requests", type=int, default=60_000, help="requests in all, at most (default 60000)")
    parser.add_argument("--batch-rows", type=int, default=1, help="feature rows per request (default 1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    parser.add_argument("--fuzz-examples", type=int, default=200, help="schemathesis cases per operation, 0 = none")
    parser.add_argument("--no-abuse", action="store_true", help="skip the abuse phase")
    parser.add_argument("--features", type=Path, help="feature table to take rows from (default: paths.features)")
    parser.add_argument("--url", help="test this running API (loopback only) instead of starting one")
    parser.add_argument("--workers", type=int, help="worker processes of the started API (default: serving.workers)")
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiProcess:
    """scripts/serve_api.py on a free loopback port, its JSON log in a temporary file."""

    def __init__(self, args: argparse.Namespace, workdir: Path, rate_limit: int | None, workers: int) -> None:
        self.port = free_port()
        self.workers = workers
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"api-{self.port}.log"
        command = [sys.executable, str(REPO_ROOT / "scripts" / "serve_api.py"), "--port", str(self.port),
                   "--variant", args.variant, "--variant-file", str(workdir / f"variant-{self.port}")]
        for flag, option in (("--model-uri", args.model_uri), ("--artifacts-dir", args.artifacts_dir),
                             ("--mlflow-uri", args.mlflow_uri), ("--config", args.config),
                             ("--workers", workers), ("--rate-limit", rate_limit)):
            if option is not None:
                command += [flag, str(option)]
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


# -- phases -------------------------------------------------------------------------------


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


def _target(base: str, bodies: list[bytes], sources: list[str] | None = None,
            headers: list[dict[str, str]] | None = None) -> Target:
    parsed = urlparse(base)
    return Target(parsed.hostname or "127.0.0.1", parsed.port or 80, "/predict", bodies, sources or CLIENTS, headers)


def measure_capacity(base: str, bodies: list[bytes], args: argparse.Namespace) -> Phase:
    results = run(closed_loop(_target(base, bodies), args.connections, args.capacity_seconds, args.timeout))
    return Phase(f"capacity probe ({args.connections} clients back to back)", None, results)


def open_phase(base: str, bodies: list[bytes], name: str, rate: float, count: int, timeout: float) -> Phase:
    return Phase(name, rate, run(open_loop(_target(base, bodies), rate, count, timeout)))


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


def _chunked(data: bytes, size: int = 65536):
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


def abuse(api: ApiProcess, rows: list[dict], capacity: float, duration: float, timeout: float) -> list[tuple]:
    """The hostile cases against an API with the configured rate limit: rows of (case, outcome, memory)."""
    base = api.url
    out = []
    limit = httpx.get(f"{base}/version", timeout=5).json().get("rate_limit_per_minute")
    one_row = orjson.dumps({"rows": rows[:1]})

    spoof = run(sequential(_target(base, [one_row], ["127.0.0.2"],
                                   [{"X-Forwarded-For": f"198.51.100.{i}"} for i in range(150)]), 150, timeout))
    out.append((f"150 requests, each with another spoofed X-Forwarded-For, one client (limit {limit}/min)",
                f"{spoof.count(served)} served, {spoof.count(lambda s: s == 429)} refused 429, "
                f"{spoof.count(lambda s: s >= 500)} 5xx in {spoof.seconds:.1f} s (the bucket refills "
                f"{limit / 60:.2f} a second)", ""))

    head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    before = api.memory_mb()
    status, sent, seconds = run(_stream(base, head, _chunked(b" " * (100 * 2**20)), 60))
    after = api.memory_mb()
    out.append(("100 MB chunked body", f"{status} after {seconds * 1e3:.0f} ms; {sent / 2**20:.1f} MB sent before "
                "the server closed", _memory(before, after)))

    batch = b'{"rows": [' + b",".join([orjson.dumps(r) for r in (rows * (100_000 // len(rows) + 1))[:100_000]]) + b"]}"
    before = api.memory_mb()
    status, sent, seconds = run(_stream(base, head, _chunked(batch), 60))
    after = api.memory_mb()
    out.append((f"100k-row chunked batch ({len(batch) / 2**20:.0f} MB)",
                f"{status} after {seconds * 1e3:.0f} ms; {sent / 2**20:.1f} MB sent", _memory(before, after)))

    flood_rate = 4 * capacity
    good_rate = 5.0

    async def both() -> tuple[Results, Results]:
        flood = open_loop(_target(base, [one_row], ["127.0.0.3"]), flood_rate, int(flood_rate * duration), timeout)
        good = open_loop(_target(base, [one_row], ["127.0.0.4"]), good_rate, int(good_rate * duration), timeout)
        return tuple(await asyncio.gather(flood, good))

    flood, good = run(both())
    p95 = np.percentile(good.latencies_of(served), 95) * 1e3 if good.count(served) else float("nan")
    out.append((f"a good client at {good_rate:g}/s while another floods at {flood_rate:.0f}/s for {duration:g} s",
                f"good client: {good.count(served)}/{good.sent} served{_others(good)}, p95 {p95:.1f} ms, "
                f"{good.count(lambda s: s >= 500)} 5xx; flood: {flood.count(lambda s: s == 429)} refused 429, "
                f"{flood.count(lambda s: s == 503)} refused 503, {flood.count(served)} served, "
                f"{flood.count(lambda s: s >= 500 and s != 503)} other 5xx; client lag {good.max_lag_s * 1e3:.0f} ms "
                f"(good), {flood.max_lag_s * 1e3:.0f} ms (flood)", ""))
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


# -- report -------------------------------------------------------------------------------


def _ms(values: np.ndarray, q: float) -> str:
    return f"{np.percentile(values, q) * 1e3:.1f}" if len(values) else "-"


def phase_row(phase: Phase) -> str:
    r = phase.results
    ok, refused = r.latencies_of(served), r.latencies_of(lambda s: s == 503)
    every = r.latencies_of(answered)
    within = sum(1 for s, t in zip(r.statuses, r.latencies) if answered(s) and t <= ANSWER_WITHIN_S)
    offered = f"{phase.offered:.0f}" if phase.offered else "closed loop"
    top = f"{every.max() * 1e3:.0f}" if len(every) else "-"
    return (f"| {phase.name} | {offered} | {r.sent} | {r.count(served) / r.seconds:.1f} "
            f"| {r.count(lambda s: s == 503)} | {r.count(lambda s: s == 429)} "
            f"| {r.count(lambda s: s >= 500 and s != 503)} | {r.count(lambda s: s == 0)} "
            f"| {_ms(ok, 50)} | {_ms(ok, 95)} | {_ms(ok, 99)} | {_ms(refused, 95)} | {top} "
            f"| {within / r.sent:.2%} | {r.max_lag_s * 1e3:.0f} |")


def report_body(phases: list[Phase], fuzzed: dict | None, abused: list[tuple] | None, info: dict,
                args: argparse.Namespace, capacity: float, started_api: bool, workers: int | None,
                serving) -> str:
    load = os.getloadavg()
    lines = [
        "## API load test (`scripts/load_test.py`)",
        "",
        machine_line() + f" Load average before the run: {load[0]:.1f} (other work shares the cores).",
        "",
        f"POST /predict on 127.0.0.1, {args.batch_rows} real feature row(s) per request; model "
        f"`{info.get('model_name')}` version {info.get('model_version')} (variant {info.get('model_variant')})"
        + (f"; {workers} uvicorn worker(s) started by the script" if started_api else "")
        + f"; queue of {serving.max_queue} per worker, wait at most {serving.max_queue_wait_s:g} s (config). "
        "The load generator (asyncio, keep-alive connections) shares the machine's cores with the server. "
        "Latency is measured by the client from when each request was due (open loop) to its answer. "
        "Phases up to 4x run with the rate limiter above the offered load.",
        "",
        "| phase | offered req/s | sent | goodput (200/s) | 503 | 429 | other 5xx | no answer | p50 ms | p95 ms "
        "| p99 ms | 503 p95 ms | max ms | answered within 1 s | client lag ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[phase_row(p) for p in phases],
        "",
        f"Capacity (goodput of the closed-loop probe, used for 1x/2x/4x): **{capacity:.0f} requests a second**.",
        "",
        "Targets:",
    ]
    target = next((p for p in phases if p.name.startswith("target")), None)
    if target is not None:
        r = target.results
        p95 = np.percentile(r.latencies_of(served), 95) * 1e3 if r.count(served) else float("nan")
        met = p95 < P95_TARGET_MS and r.count(served) == r.sent
        lines.append(f"- p95 < {P95_TARGET_MS:g} ms at {target.offered:g} one-row requests a second: "
                     f"{'met' if met else 'not met'} (p95 {p95:.1f} ms, {r.count(served)}/{r.sent} served).")
    top = max((p for p in phases if p.name.startswith("overload")), key=lambda p: p.offered or 0, default=None)
    if top is not None:
        r = top.results
        late = sum(1 for s, t in zip(r.statuses, r.latencies) if not answered(s) or t > ANSWER_WITHIN_S)
        lines.append(f"- at {top.name.split()[-1]} ({top.offered:.0f} req/s) every request answered within "
                     f"{ANSWER_WITHIN_S:g} s, served or refused: {'met' if late == 0 else 'not met'} "
                     f"({late} of {r.sent} later or unanswered).")
    five = sum(p.results.count(lambda s: s >= 500 and s != 503) for p in phases)
    lines.append(f"- no 5xx other than load shedding's 503 in these phases: {'met' if five == 0 else 'not met'} "
                 f"({five}).")
    if fuzzed is not None:
        if "error" in fuzzed:
            lines.append(f"- schemathesis: not run ({fuzzed['error']}).")
        else:
            count5 = sum(n for code, n in fuzzed["statuses"].items() if code.startswith("5"))
            total = sum(fuzzed["statuses"].values())
            lines.append(f"- zero 5xx in a schemathesis run over HTTP ({total} requests, answers by status "
                         f"{dict(sorted(fuzzed['statuses'].items()))}, {fuzzed['seconds']:.0f} s): "
                         f"{'met' if count5 == 0 and fuzzed['exit'] == 0 else 'not met'} ({count5} 5xx).")
    if abused:
        lines += ["", "Hostile clients (a second API started with the configured rate limit):", "",
                  "| case | outcome | server memory |", "|---|---|---|",
                  *[f"| {case} | {outcome} | {memory or '-'} |" for case, outcome, memory in abused]]
        fives = [o for _, o, _ in abused if re.search(r"(?<![\d.])[1-9]\d* (other )?5xx", o)]
        good = next((o for c, o, _ in abused if c.startswith("a good client")), "")
        lines.append("")
        lines.append("- zero 5xx in the hostile cases (a flood's own 503s aside): "
                     f"{'met' if not fives else 'not met'}.")
        match = re.search(r"good client: (\d+)/(\d+) served", good)
        if match:
            lines.append(f"- the good client fully served during the flood: "
                         f"{'met' if match.group(1) == match.group(2) else 'not met'} ({match.group(0)}).")
    lines += ["", "Rerun: `make load-test` (or `make bench`), or `.venv/bin/python scripts/load_test.py --help`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if (args.target_rate <= 0 or args.duration <= 0 or args.batch_rows < 1 or args.max_requests < 1
            or any(m <= 0 for m in args.multiples) or args.connections < 1):
        print("load_test: rates, multiples, --duration, --batch-rows, --connections and --max-requests must be "
              "positive", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        features = tuple(cfg.features.model_features)
        rows = feature_rows(args.features or Path(cfg.paths.features), features, 500 * args.batch_rows)
        bodies = payloads(rows, args.batch_rows)
        base = loopback_only(args.url) if args.url else None
        with tempfile.TemporaryDirectory(prefix="load_test_") as tmp:
            workdir = Path(tmp)
            workers = args.workers or cfg.serving.workers
            api = None if base else ApiProcess(args, workdir, rate_limit=10_000_000, workers=workers)
            try:
                if api is not None:
                    api.wait_healthy()
                    base = api.url
                phases, fuzzed, info, capacity = run_phases(base, bodies, args, workdir)
            finally:
                if api is not None:
                    api.stop()
            abused = None
            if api is not None and not args.no_abuse:
                guarded = ApiProcess(args, workdir, rate_limit=None, workers=workers)
                try:
                    guarded.wait_healthy()
                    abused = abuse(guarded, rows, capacity, args.duration, args.timeout)
                finally:
                    guarded.stop()
    except (ConfigError, LoadTestError) as exc:
        print(f"load_test: {exc}", file=sys.stderr)
        return 1
    started = workers if api is not None else None
    body = report_body(phases, fuzzed, abused, info, args, capacity, started_api=api is not None, workers=started,
                       serving=cfg.serving)
    print(body)
    if not args.no_report:  # one section per worker count, so `make bench` keeps both
        write_section(section_name(started), body, report=args.report)
        print(f"\nwritten to {args.report}")
    return 0


def section_name(workers: int | None) -> str:
    return "api" if workers in (None, 1) else f"api-{workers}-workers"


def run_phases(base: str, bodies: list[bytes], args: argparse.Namespace,
               workdir: Path) -> tuple[list[Phase], dict | None, dict, float]:
    info = httpx.get(f"{base}/version", timeout=5.0).json()
    fuzzed = fuzz(base, args.fuzz_examples, workdir) if args.fuzz_examples > 0 else None
    run(open_loop(_target(base, bodies), 50, 100, args.timeout))  # warm-up, not reported
    budget = args.max_requests
    probe = measure_capacity(base, bodies, args)
    capacity = args.capacity or probe.results.count(served) / probe.results.seconds
    phases = [probe]
    plan = [(f"target {args.target_rate:g}/s", args.target_rate)]
    plan += [(f"overload {m:g}x", m * capacity) for m in args.multiples]
    for name, rate in plan:
        count = min(int(rate * args.duration), budget)
        if count < 1:
            break
        budget -= count
        phase = open_phase(base, bodies, name, rate, count, args.timeout)
        r = phase.results
        log.info("%s (%.0f/s): %d sent, %d served, %d refused 503, %d no answer", name, rate, r.sent,
                 r.count(served), r.count(lambda s: s == 503), r.count(lambda s: s == 0))
        phases.append(phase)
    return phases, fuzzed, info, capacity


if __name__ == "__main__":
    sys.exit(main())
