"""Live scoring: ticks.features -> the served model -> ticks.predictions, with Prometheus metrics.

    python scripts/live_scorer.py                       # local broker (make kafka), metrics on :9101
    python scripts/live_scorer.py --bootstrap HOST:PORT --metrics-port 9101

Scores with the API's model code and follows the same rollback switch (the variant file;
see docs/runbook.md). Runs until SIGINT or SIGTERM, then commits and prints one JSON line of
counters. Metrics: http://127.0.0.1:9101/metrics (score, spike alerts, end-to-end latency,
consumer lag, model variant).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import asdict

from prometheus_client import start_http_server

from api.cli import add_model_args, model_overrides
from api.scorer import LiveScorer, ScorerMetrics, ScorerSettings
from api.serving import VariantError, holder_from_config
from common.config import ConfigError, load_config
from common.kafka import BrokerUnavailable, tame_client_logs
from common.logs import setup_logging

log = logging.getLogger("scripts.live_scorer")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or config)")
    parser.add_argument("--topic-in", "--topic_in", dest="topic_in",
                        help="feature rows (default: kafka.topic_features)")
    parser.add_argument("--topic-out", "--topic_out", dest="topic_out",
                        help="predictions (default: kafka.topic_predictions)")
    parser.add_argument("--group", help="consumer group (default: serving.scorer_group)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="metrics address (default %(default)s)")
    parser.add_argument("--metrics-port", type=int, default=9101, help="metrics port, 0 = none (default %(default)s)")
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    try:
        cfg = load_config(args.config, overrides={
            "kafka.bootstrap_servers": args.bootstrap, "kafka.topic_features": args.topic_in,
            "kafka.topic_predictions": args.topic_out, "serving.scorer_group": args.group, **model_overrides(args)})
        holder = holder_from_config(cfg)
    except (ConfigError, VariantError) as exc:
        print(f"live_scorer: {exc}", file=sys.stderr)
        return 2
    k = cfg.kafka
    if len({k.topic_features, k.topic_predictions, k.topic_dlq}) < 3:
        print("live_scorer: the input, output and DLQ topics must be three different topics", file=sys.stderr)
        return 2
    settings = ScorerSettings(bootstrap=k.bootstrap_servers, topic_in=k.topic_features, topic_out=k.topic_predictions,
                              topic_dlq=k.topic_dlq, group=cfg.serving.scorer_group, partitions=k.partitions,
                              reload_s=cfg.serving.reload_s)
    metrics = ScorerMetrics()
    if args.metrics_port:
        try:
            start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
        except OSError as exc:
            print(f"live_scorer: cannot serve metrics on {args.metrics_host}:{args.metrics_port} ({exc}); "
                  "pick another --metrics-port", file=sys.stderr)
            return 1
    scorer = LiveScorer(settings, holder, metrics)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: stopping after the current batch", signal.Signals(signum).name)
        scorer.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("scoring %s -> %s as group %s; metrics on %s:%s", settings.topic_in, settings.topic_out,
             settings.group, args.metrics_host, args.metrics_port or "-")
    try:
        stats = scorer.run()
    except BrokerUnavailable as exc:
        print(f"live_scorer: {exc}", file=sys.stderr)
        return 1
    served = holder.current()
    print(json.dumps({**asdict(stats), "model_variant": served.variant if served else None}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
