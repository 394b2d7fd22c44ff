"""Switch the running API and live scorer between the ML model and the baseline, in one step.

    python scripts/rollback.py baseline          # make rollback: serve the baseline
    python scripts/rollback.py ml                # make rollforward: back to the ML model
    python scripts/rollback.py status            # what is asked for and what is served

Writes the variant file (serving.variant_file, env MODEL_VARIANT_FILE) atomically. The API
and the scorer re-read it every serving.reload_s seconds, load the other model, then swap it
in: requests in flight finish with the old model, none is refused. The script then waits until
the API's and the scorer's /metrics report the new variant (for the API: every worker) and
prints what each one serves. Where they are: serving.api_url and serving.scorer_metrics_url
(env API_URL, SCORER_METRICS_URL; the Docker stack sets them to its service names, so
`docker compose ... exec api python scripts/rollback.py baseline` confirms both). Exit 0 when
the API confirmed (and the scorer, if it answers), 1 otherwise.
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
    parser.add_argument("--api", help="API base URL (default: serving.api_url, env API_URL)")
    parser.add_argument("--scorer-metrics",
                        help="live scorer metrics URL (default: serving.scorer_metrics_url, env SCORER_METRICS_URL)")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for confirmation (default 30)")
    parser.add_argument("--no-wait", action="store_true", help="only write the file")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def served_variant(client: httpx.Client, metrics_url: str, gauge: str) -> str | None:
    """The variant whose ``gauge`` is 1 in a /metrics page; "ml+baseline" while several worker processes
    disagree (the API's gauges are the maximum over its workers); None when nothing answers."""
    try:
        response = client.get(metrics_url)
        if response.status_code != 200:
            return None
        for family in text_string_to_metric_families(response.text):
            if family.name == gauge:
                serving = sorted((s.labels["variant"] for s in family.samples if s.value == 1), reverse=True)
                return "+".join(serving) or None
    except (httpx.HTTPError, ValueError):
        return None
    return None


def api_variant(client: httpx.Client, api: str) -> str | None:
    """What every worker of the API serves (its /metrics); None when the API does not answer."""
    return served_variant(client, f"{api.rstrip('/')}/metrics", "api_model_variant")


def scorer_variant(client: httpx.Client, url: str) -> str | None:
    """The variant whose scorer_model_variant gauge is 1; None when the scorer does not answer."""
    return served_variant(client, url, "scorer_model_variant")


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
        cfg = load_config(args.config, overrides={
            "serving.variant_file": str(args.variant_file) if args.variant_file else None,
            "serving.api_url": args.api, "serving.scorer_metrics_url": args.scorer_metrics})
    except ConfigError as exc:
        print(f"rollback: {exc}", file=sys.stderr)
        return 2
    args.api, args.scorer_metrics = cfg.serving.api_url, cfg.serving.scorer_metrics_url
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
