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
import logging
import sys
import tempfile
from pathlib import Path

import httpx

from api.load_report import report_body
from api.loadgen import open_loop, run, served
from api.loadtest import (ApiProcess, LoadTestError, Phase, abuse, feature_rows, fuzz, loopback_only, measure_capacity,
                          open_phase, payloads, target)
from common.benchreport import REPORT, write_section
from common.config import ConfigError, load_config
from common.logs import setup_logging

log = logging.getLogger("scripts.load_test")


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
            api = None if base else ApiProcess(workdir, serve_options(args), rate_limit=10_000_000,
                                                 workers=workers)
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
                guarded = ApiProcess(workdir, serve_options(args), rate_limit=None, workers=workers)
                try:
                    guarded.wait_healthy()
                    abused = abuse(guarded, rows, capacity, args.duration, args.timeout)
                finally:
                    guarded.stop()
    except (ConfigError, LoadTestError) as exc:
        print(f"load_test: {exc}", file=sys.stderr)
        return 1
    started = workers if api is not None else None
    body = report_body(phases, fuzzed, abused, info, args.batch_rows, capacity, workers=started, serving=cfg.serving)
    print(body)
    if not args.no_report:  # one section per worker count, so `make bench` keeps both
        write_section(section_name(started), body, report=args.report)
        print(f"\nwritten to {args.report}")
    return 0


def serve_options(args: argparse.Namespace) -> dict[str, object]:
    """The started API's scripts/serve_api.py flags, from this script's."""
    return {"--variant": args.variant, "--model-uri": args.model_uri, "--artifacts-dir": args.artifacts_dir,
            "--mlflow-uri": args.mlflow_uri, "--config": args.config}


def section_name(workers: int | None) -> str:
    return "api" if workers in (None, 1) else f"api-{workers}-workers"


def run_phases(base: str, bodies: list[bytes], args: argparse.Namespace,
               workdir: Path) -> tuple[list[Phase], dict | None, dict, float]:
    info = httpx.get(f"{base}/version", timeout=5.0).json()
    fuzzed = fuzz(base, args.fuzz_examples, workdir) if args.fuzz_examples > 0 else None
    run(open_loop(target(base, bodies), 50, 100, args.timeout))  # warm-up, not reported
    budget = args.max_requests
    probe = measure_capacity(base, bodies, args.connections, args.capacity_seconds, args.timeout)
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
