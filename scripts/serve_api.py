"""Run the prediction API (uvicorn) with JSON logs, in one or several worker processes.

    python scripts/serve_api.py                          # http://127.0.0.1:8000/docs
    python scripts/serve_api.py --host 0.0.0.0 --port 8000 --workers 2 --rate-limit 600
    python scripts/serve_api.py --trusted-proxy 10.0.0.0/8   # behind a proxy that sets X-Forwarded-For

Model options default to config.yaml and the environment (MODEL_VARIANT, MODEL_URI,
MODEL_VARIANT_FILE, MLFLOW_TRACKING_URI, RATE_LIMIT_PER_MINUTE, API_WORKERS, TRUSTED_PROXIES).
/health answers 503 until the model is loaded. SIGINT or SIGTERM stops it after the requests
in flight.

Workers share the port, the per-client rate limit and the metrics: /metrics on any of them
reports the whole instance (prometheus_client's multiprocess mode, in PROMETHEUS_MULTIPROC_DIR
if set, else a temporary folder; either is emptied at start). Forwarded headers are believed
only from --trusted-proxy addresses: uvicorn's own handling, which trusts loopback, is off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import uvicorn

from api.admission import Admission
from api.app import RATE_TABLE, WORKER_SETTINGS_ENV
from api.cli import add_model_args, model_overrides
from api.clients import ClientResolver, ProxyConfigError
from api.logs import log_config
from api.metrics import MULTIPROC_ENV
from api.ratelimit import create_table
from api.serving import VariantError, check_variant
from common.config import ConfigError, load_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    parser.add_argument("--workers", type=int, help="worker processes (default: serving.workers, env API_WORKERS)")
    parser.add_argument("--rate-limit", type=int, metavar="PER_MINUTE",
                        help="requests a minute per client on /predict, 0 = off "
                             "(default: serving.rate_limit_per_minute, env RATE_LIMIT_PER_MINUTE)")
    parser.add_argument("--trusted-proxy", action="append", metavar="ADDRESS_OR_NETWORK",
                        help="a proxy whose X-Forwarded-For names the client; repeat for several "
                             "(default: serving.trusted_proxies, env TRUSTED_PROXIES; none)")
    add_model_args(parser)
    return parser.parse_args(argv)


def checked_config(args: argparse.Namespace) -> tuple[dict, object]:
    """The flag overrides and the resolved config; raises ConfigError with what to fix."""
    overrides = {k: v for k, v in {
        **model_overrides(args), "serving.rate_limit_per_minute": args.rate_limit, "serving.workers": args.workers,
        "serving.trusted_proxies": args.trusted_proxy}.items() if v is not None}
    cfg = load_config(args.config, overrides=overrides)
    s = cfg.serving
    if s.rate_limit_per_minute < 0:
        raise ConfigError("the rate limit must be 0 (off) or a positive number of requests a minute")
    if s.workers < 1:
        raise ConfigError("--workers / serving.workers / API_WORKERS must be at least 1")
    try:
        check_variant(s.variant, "serving.variant / MODEL_VARIANT")
        ClientResolver(s.trusted_proxies)
        Admission(s.max_queue, s.max_queue_wait_s, s.max_queue_per_client)
    except (VariantError, ProxyConfigError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    return overrides, cfg


def shared_state_dir(workers: int) -> tuple[str | None, bool]:
    """For several workers: an empty folder for their metrics and rate limit table, and whether it is ours
    to remove at exit (a temporary one). (None, False) for one worker."""
    if workers == 1:
        os.environ.pop(MULTIPROC_ENV, None)
        return None, False
    given = os.environ.get(MULTIPROC_ENV)
    path = given or tempfile.mkdtemp(prefix="volspike-api-")
    shutil.rmtree(path, ignore_errors=True)  # values of a previous run must not add to this one's
    Path(path).mkdir(parents=True)
    create_table(Path(path) / RATE_TABLE)
    os.environ[MULTIPROC_ENV] = path
    return path, not given


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = "DEBUG" if args.verbose else "INFO"
    try:
        overrides, cfg = checked_config(args)
    except ConfigError as exc:
        print(f"serve_api: {exc}", file=sys.stderr)
        return 2
    workers = cfg.serving.workers
    os.environ[WORKER_SETTINGS_ENV] = json.dumps({"config": str(args.config) if args.config else None,
                                                  "overrides": overrides})
    path, temporary = shared_state_dir(workers)
    try:
        uvicorn.run("api.app:worker_app", factory=True, host=args.host, port=args.port, workers=workers,
                    log_config=log_config(level), access_log=False, proxy_headers=False,
                    timeout_graceful_shutdown=10,
                    timeout_worker_healthcheck=60)  # a worker imports pandas, sklearn, xgboost first: seconds
    finally:
        if path and temporary:
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
