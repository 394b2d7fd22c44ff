"""The live path end to end, offline, for a few minutes: market -> ingest -> Kafka -> features -> scores -> API.

    python scripts/live_demo.py [--minutes 3] [--speed 1] [--engine tansu|apache]     # make live-demo

Starts on free loopback ports: a local broker (Tansu, in memory, by default; --engine apache for
Apache Kafka), the offline market (scripts/replay_ws.py playing the recorded BTC-USD frames of
2026-04-05), ws_ingest.py, the featurizer, the live scorer and the API. It follows ticks.predictions
while they run, then stops them all and prints what went through: frames, raw records published,
rejections, feature rows, predictions, alerts, and the latency from a frame's receipt by the
ingestor to its prediction being readable, p50/p95/p99. Every service's log is in
data/live-demo/<time>/ (ignored by git). Needs a trained model: `make demo` first.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import socket
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import httpx
import orjson
from kafka import TopicPartition

from common.config import REPO_ROOT, ConfigError, load_config
from common.kafka import ensure_topics, make_consumer, tame_client_logs, topic_partitions
from common.logs import setup_logging
from common.net import free_port
from features.ticks import parse_time_ns
from streaming.apache_kafka import ApacheKafka
from streaming.broker import BrokerError, TansuBroker
from streaming.services import Service

log = logging.getLogger("scripts.live_demo")
FRAMES = REPO_ROOT / "data" / "sample" / "btcusd-2026-04-05-frames" / "BTC_USD.ndjson.gz"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to ingest (default 3)")
    parser.add_argument("--speed", type=float, default=1.0, help="market speed, 1 = real time (default 1)")
    parser.add_argument("--engine", choices=("tansu", "apache"), default="tansu", help="broker (default tansu)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)



def wait_for_port(port: int, service: Service, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if not service.running or time.monotonic() > deadline:
                raise RuntimeError(f"{service.name} did not listen on port {port}; see {service.err_path}")
            time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    try:
        cfg = load_config()
    except ConfigError as exc:
        print(f"live_demo: {exc}", file=sys.stderr)
        return 2
    if not args.minutes > 0 or not args.speed > 0:
        print("live_demo: --minutes and --speed must be positive", file=sys.stderr)
        return 2
    workdir = REPO_ROOT / "data" / "live-demo" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    port = free_port()
    broker = (ApacheKafka(port, workdir / "kafka") if args.engine == "apache"
              else TansuBroker(port, log_path=workdir / "broker.log"))
    try:
        broker.start()
    except BrokerError as exc:
        print(f"live_demo: {exc}", file=sys.stderr)
        return 1
    bootstrap = broker.bootstrap
    services: list[Service] = []
    try:
        ensure_topics(bootstrap, {**topic_partitions(cfg.kafka), cfg.kafka.topic_predictions: cfg.kafka.partitions})
        market_port, api_port = free_port(), free_port()
        market = Service("market", ["scripts/replay_ws.py", "--raw", str(FRAMES), "--speed", f"{args.speed:g}",
                                    "--port", str(market_port)], workdir)
        services.append(market)
        variant = ["--variant-file", str(workdir / "model_variant")]
        services += [
            Service("featurizer", ["features/featurizer.py", "--bootstrap", bootstrap, "--group", "live-demo",
                                   "--out-dir", str(workdir / "stream"), "--flush-seconds", "2"], workdir),
            Service("scorer", ["scripts/live_scorer.py", "--bootstrap", bootstrap, "--metrics-port", "0",
                               "--group", "live-demo-scorer", *variant], workdir),
            Service("api", ["scripts/serve_api.py", "--port", str(api_port), *variant], workdir),
        ]
        wait_for_port(market_port, market)
        wait_for_port(api_port, services[-1])
        ingest = Service("ingest", ["scripts/ws_ingest.py", "--pair", "BTC-USD", "--minutes", f"{args.minutes:g}",
                                    "--ws-url", f"ws://127.0.0.1:{market_port}", "--bootstrap", bootstrap,
                                    "--save-disk", "--raw-dir", str(workdir / "raw"),
                                    "--spool-dir", str(workdir / "spool")], workdir)
        services.append(ingest)
        print(f"live demo for {args.minutes:g} min on {args.engine} at {bootstrap}; API http://127.0.0.1:{api_port}; "
              f"logs in {workdir}", flush=True)
        predictions = follow_predictions(bootstrap, cfg.kafka.topic_predictions, ingest, cfg.kafka.partitions)
        health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=5).json()
        for service in reversed(services):
            code = service.stop()
            if code not in (0, -signal.SIGTERM):
                log.warning("%s exited with %s; see %s", service.name, code, service.err_path)
        report(ingest, services[1], predictions, health, bootstrap, cfg.kafka.topic_dlq)
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"live_demo: {exc}", file=sys.stderr)
        return 1
    finally:
        for service in services:
            service.stop(10)
        broker.stop()
    return 0


def follow_predictions(bootstrap: str, topic: str, ingest: Service, partitions: int) -> list[dict]:
    """Read predictions as they come until the ingestor is done and the rest has drained."""
    consumer = make_consumer(bootstrap, None, fetch_max_wait_ms=10)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    seen: list[dict] = []
    next_status = time.monotonic() + 10
    last_activity = time.monotonic()
    try:
        while True:
            batch = consumer.poll(timeout_ms=50)
            now_ns = time.time_ns()
            for records in batch.values():
                for record in records:
                    prediction = orjson.loads(record.value)
                    stamp = prediction.get("received_at")
                    if stamp:
                        prediction["latency_ms"] = (now_ns - parse_time_ns(stamp)) / 1e6
                    seen.append(prediction)
            if time.monotonic() >= next_status:
                next_status += 10
                log.info("status: %d predictions, %d alerts", len(seen), sum(p.get("alert", False) for p in seen))
            if ingest.running or batch:
                last_activity = time.monotonic()
            elif time.monotonic() - last_activity > 8:  # the ingestor is done and nothing came for 8 s
                return seen
    finally:
        consumer.close()


def report(ingest: Service, featurizer: Service, predictions: list[dict], health: dict, bootstrap: str,
           topic_dlq: str) -> None:
    counters = _last_json(ingest.stdout())
    features = _last_json(featurizer.stdout())
    latencies = [p["latency_ms"] for p in predictions if "latency_ms" in p]
    dlq = _count_topic(bootstrap, topic_dlq)
    summary = {
        "frames": counters.get("frames"), "tickers": counters.get("tickers"),
        "published": counters.get("published"), "rejected_by_ingestor": counters.get("rejections"),
        "feature_rows": features.get("rows"), "rejected_by_featurizer": features.get("summary", {}).get("rejected"),
        "dlq_records": dict(dlq), "predictions": len(predictions),
        "alerts": sum(bool(p.get("alert")) for p in predictions),
        "frame_to_prediction_ms": ({"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
                                    "p99": round(percentile(latencies, 99), 1)} if latencies else None),
        "api_health": health.get("status"),
    }
    print(orjson.dumps(summary).decode(), flush=True)


def _last_json(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return orjson.loads(lines[-1]) if lines else {}


def _count_topic(bootstrap: str, topic: str) -> Counter:
    """DLQ records by reason."""
    consumer = make_consumer(bootstrap, None, consumer_timeout_ms=2000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    reasons: Counter = Counter()
    for record in consumer:
        reasons[orjson.loads(record.value).get("reason", "?")] += 1
    consumer.close()
    return reasons


if __name__ == "__main__":
    sys.exit(main())
