"""Switch the running API and live scorer between the ML model and the baseline, in one step.

    python scripts/rollback.py baseline          # make rollback: serve the baseline
    python scripts/rollback.py ml                # make rollforward: back to the ML model
    python scripts/rollback.py status            # what is asked for and what is served

Writes the variant file (serving.variant_file, env MODEL_VARIANT_FILE) atomically. The API
and the scorer re-read it every serving.reload_s seconds, load the other model, then swap it
in: requests in flight finish with the old model, none is refused. The script then waits until
the API's /version and the scorer's /metrics report the new variant and prints what each one
serves. Exit 0 when the API confirmed (and the scorer, if it answers), 1 otherwise.
The choice survives restarts: run the opposite command to undo it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.serving import VariantError, read_variant_file, write_variant_file
from common.config import ConfigError, load_config
from common.logs import setup_logging

log = logging.getLogger("scripts.rollback")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("baseline", "ml", "status"))
    parser.add_argument("--variant-file", type=Path, help="the switch (default: serving.variant_file)")
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="API base URL (default %(default)s)")
    parser.add_argument("--scorer-metrics", default="http://127.0.0.1:9101/metrics",
                        help="live scorer metrics URL (default %(default)s)")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for confirmation (default 30)")
    parser.add_argument("--no-wait", action="store_true", help="only write the file")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def api_variant(client: httpx.Client, api: str) -> str | None:
    """The variant /version reports; None when the API does not answer."""
    try:
        response = client.get(f"{api.rstrip('/')}/version")
        return response.json().get("model_variant") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def scorer_variant(client: httpx.Client, url: str) -> str | None:
    """The variant whose scorer_model_variant gauge is 1; None when the scorer does not answer."""
    try:
        response = client.get(url)
        if response.status_code != 200:
            return None
        for family in text_string_to_metric_families(response.text):
            if family.name == "scorer_model_variant":
                return next((s.labels["variant"] for s in family.samples if s.value == 1), None)
    except (httpx.HTTPError, ValueError):
        return None
    return None


def confirm(target: str, api: str, scorer: str, wait_s: float) -> dict[str, str | None]:
    """Poll both services until they serve ``target`` or ``wait_s`` passes; what each reported last."""
    deadline = time.monotonic() + wait_s
    seen: dict[str, str | None] = {"api": None, "scorer": None}
    with httpx.Client(timeout=2.0) as client:
        while True:
            seen["api"] = api_variant(client, api)
            seen["scorer"] = scorer_variant(client, scorer)
            done = seen["api"] == target and seen["scorer"] in (target, None)
            if done or time.monotonic() > deadline:
                return seen
            time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        cfg = load_config(args.config, overrides={"serving.variant_file": str(args.variant_file) if args.variant_file
                                                  else None})
    except ConfigError as exc:
        print(f"rollback: {exc}", file=sys.stderr)
        return 2
    path = Path(cfg.serving.variant_file)
    try:
        current = read_variant_file(path)
    except VariantError as exc:
        current = f"unreadable ({exc})"
    if args.action == "status":
        with httpx.Client(timeout=2.0) as client:
            api, scorer = api_variant(client, args.api), scorer_variant(client, args.scorer_metrics)
        print(f"variant file {path}: {current or f'absent (default {cfg.serving.variant})'}; "
              f"API {args.api}: {api or 'not answering'}; scorer {args.scorer_metrics}: {scorer or 'not answering'}")
        return 0
    try:
        write_variant_file(path, args.action)
    except OSError as exc:
        print(f"rollback: cannot write {path} ({exc}); check the path and its permissions", file=sys.stderr)
        return 1
    print(f"{path}: {current or 'absent'} -> {args.action}")
    if args.no_wait:
        return 0
    seen = confirm(args.action, args.api, args.scorer_metrics, args.wait)
    print(f"API {args.api}: serves {seen['api'] or 'nothing (not answering)'}; "
          f"scorer {args.scorer_metrics}: serves {seen['scorer'] or 'nothing (not answering)'}")
    if seen["api"] != args.action:
        print(f"rollback: the API did not confirm {args.action} within {args.wait:g} s: check "
              f"`curl {args.api}/health` (errors per variant) and docs/runbook.md", file=sys.stderr)
        return 1
    if seen["scorer"] not in (args.action, None):
        print(f"rollback: the scorer still serves {seen['scorer']}: check its log", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
