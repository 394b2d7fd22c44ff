"""Run the prediction API and the live scorer together against the local broker (make serve).

    python scripts/serve.py                      # API http://127.0.0.1:8000, scorer metrics :9101

Both are child processes (scripts/serve_api.py and scripts/live_scorer.py) configured from
config.yaml and the environment. When either exits, or on Ctrl-C / SIGTERM, the other is
stopped too, so a half-running pair never lingers. Start the broker first with `make kafka`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

from common.config import REPO_ROOT, ConfigError, load_config
from common.kafka import broker_answers, unavailable_message
from common.logs import setup_logging

log = logging.getLogger("scripts.serve")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-port", type=int, default=8000, help="API port on 127.0.0.1 (default %(default)s)")
    parser.add_argument("--metrics-port", type=int, default=9101, help="scorer metrics port (default %(default)s)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    bootstrap = cfg.kafka.bootstrap_servers
    if not broker_answers(bootstrap):
        print(f"serve: {unavailable_message(bootstrap)}", file=sys.stderr)
        return 1
    common = ["--config", str(args.config)] if args.config else []
    if args.verbose:
        common.append("-v")
    children = {
        "api": subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "serve_api.py"),
                                 "--port", str(args.api_port), *common], stdin=subprocess.DEVNULL),
        "scorer": subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "live_scorer.py"),
                                    "--metrics-port", str(args.metrics_port), *common], stdin=subprocess.DEVNULL),
    }
    stopping = {"signal": None}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("API on http://127.0.0.1:%d (docs at /docs), scorer metrics on :%d; Ctrl-C stops both",
             args.api_port, args.metrics_port)
    first_exit = None
    while stopping["signal"] is None and first_exit is None:
        first_exit = next((name for name, p in children.items() if p.poll() is not None), None)
        time.sleep(0.2)
    if first_exit is not None:
        log.error("%s exited with code %d; stopping the other", first_exit, children[first_exit].returncode)
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = {}
    for name, proc in children.items():
        try:
            codes[name] = proc.wait(30)
        except subprocess.TimeoutExpired:
            log.error("%s ignored SIGTERM for 30 s; killing it", name)
            proc.kill()
            codes[name] = proc.wait(5)
    return 0 if first_exit is None else (codes[first_exit] or 1)


if __name__ == "__main__":
    sys.exit(main())
