"""Live drift monitor: every N minutes, the last N minutes of ticks.features against the training rows.

    python scripts/drift_monitor.py                      # runs until Ctrl-C; metrics on :9102
    python scripts/drift_monitor.py --once               # read what is there, compare once, exit
    python scripts/drift_monitor.py --minutes 5 --reference data/processed/features.parquet

Writes reports/drift/live-<UTC time>.html and .json (Evidently) and reports/drift/latest.json,
and exports drift_share (share of drifted model features) and per-feature distances for
Prometheus. The reference is the training part of the served ML model's table (from its
metadata), unless --reference names a feature table to use whole.

Running on (not --once), it waits for what it needs instead of exiting: the metrics answer at
once, ``drift_reference_rows`` stays 0 and the reason is logged while the model or its training
table is missing (a fresh clone before `make demo`), and a broker that does not answer yet is
retried every 5 s. --once exits 1 with the reason instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from prometheus_client import start_http_server

from api.cli import add_model_args, model_overrides
from api.drift_monitor import DriftError, DriftMetrics, DriftMonitor, DriftSettings, reference_from_meta
from api.serving import ModelSources, load_variant
from common.config import ConfigError, load_config
from common.kafka import BrokerUnavailable, tame_client_logs
from common.logs import setup_logging
from models.artifacts import ModelLoadError

log = logging.getLogger("scripts.drift_monitor")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or config)")
    parser.add_argument("--topic", help="feature rows (default: kafka.topic_features)")
    parser.add_argument("--minutes", type=float, help="window and period (default: serving.drift_window_minutes)")
    parser.add_argument("--min-rows", type=int, help="fewer live rows: no verdict (default: serving.drift_min_rows)")
    parser.add_argument("--reference", type=Path, help="feature table used whole as the reference "
                                                       "(default: the model's training rows)")
    parser.add_argument("--max-reference-rows", type=int, default=20_000, help="thin the reference to this many")
    parser.add_argument("--out-dir", type=Path, help="reports (default: serving.drift_dir)")
    parser.add_argument("--once", action="store_true", help="compare once with what the topic holds, then exit")
    parser.add_argument("--reference-retry-s", type=float, default=30.0,
                        help="while the reference cannot be read, try again this often (default 30)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="metrics address (default %(default)s)")
    parser.add_argument("--metrics-port", type=int, default=9102, help="metrics port, 0 = none (default %(default)s)")
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    try:
        cfg = load_config(args.config, overrides={
            "kafka.bootstrap_servers": args.bootstrap, "kafka.topic_features": args.topic,
            "serving.drift_window_minutes": args.minutes, "serving.drift_min_rows": args.min_rows,
            "serving.drift_dir": str(args.out_dir) if args.out_dir else None, **model_overrides(args)})
    except ConfigError as exc:
        print(f"drift_monitor: {exc}", file=sys.stderr)
        return 2
    s = cfg.serving
    if not s.drift_window_minutes > 0 or s.drift_min_rows < 2:
        print("drift_monitor: --minutes must be positive and --min-rows at least 2", file=sys.stderr)
        return 2
    sources = ModelSources.from_config(cfg)
    settings = DriftSettings(cfg.kafka.bootstrap_servers, cfg.kafka.topic_features, s.drift_window_minutes * 60,
                             s.drift_min_rows, Path(s.drift_dir))
    metrics = DriftMetrics()

    def load_reference():
        meta = {} if args.reference else load_variant(sources, "ml").model.meta
        return reference_from_meta(meta, sources.features, args.reference, args.max_reference_rows)
    calibration = _calibration(cfg, sources.features)

    if args.once:
        return once(load_reference, settings, sources.features, metrics, s.drift_min_rows, calibration)
    if args.metrics_port:
        try:
            start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
        except OSError as exc:
            print(f"drift_monitor: cannot serve metrics on {args.metrics_host}:{args.metrics_port} ({exc})",
                  file=sys.stderr)
            return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    reference = wait_for_reference(load_reference, stop, args.reference_retry_s)
    if reference is None:
        return 0
    metrics.reference_rows.set(len(reference))
    monitor = DriftMonitor(settings, reference, sources.features, metrics, calibration)
    log.info("reference: %d training rows; window %.0f min of %s", len(reference), s.drift_window_minutes,
             settings.topic)
    try:
        monitor.connect()
    except BrokerUnavailable as exc:  # run() keeps trying every 5 s
        log.warning("%s; retrying in 5 s", exc)
    monitor.run(stop)
    return 0


def wait_for_reference(load_reference, stop: threading.Event, retry_s: float):
    """The reference rows, trying again every ``retry_s`` until they can be read; None if stopped first."""
    reason = None
    while not stop.is_set():
        try:
            return load_reference()
        except (DriftError, ModelLoadError) as exc:
            if str(exc) != reason:
                reason = str(exc)
                log.warning("no reference yet (%s); trying again every %.0f s", reason, retry_s)
        stop.wait(retry_s)
    return None


def once(load_reference, settings: DriftSettings, features: tuple[str, ...], metrics: DriftMetrics,
         min_rows: int, calibration: dict | None) -> int:
    """Read what the topic holds, compare once, print the result; 1 with the reason when there is none."""
    try:
        reference = load_reference()
        monitor = DriftMonitor(settings, reference, features, metrics, calibration)
        monitor.connect()
    except (DriftError, ModelLoadError, BrokerUnavailable) as exc:
        print(f"drift_monitor: {exc}", file=sys.stderr)
        return 1
    try:
        read = monitor.catch_up()
    finally:
        monitor.close()
    result = monitor.evaluate()
    print(json.dumps({"read": read, **result}), flush=True)
    if result["outcome"] != "ok":
        print(f"drift_monitor: {result['rows']} live rows in the window, {min_rows} needed "
              "(let the featurizer run longer or pass --min-rows)" if result["outcome"] == "too_few_rows"
              else f"drift_monitor: {result.get('error')}", file=sys.stderr)
        return 1
    return 0


def _calibration(cfg, features: tuple[str, ...]) -> dict | None:
    """The drift thresholds scripts/generate_evidently_report.py calibrated on the training windows, if any."""
    path = Path(cfg.paths.reports_dir) / "evidently" / "summary.json"
    try:
        calibration = json.loads(path.read_text()).get("calibration")
    except (OSError, ValueError) as exc:
        log.warning("no drift calibration at %s (%s): a fixed threshold per column is used; run "
                    "scripts/generate_evidently_report.py", path, exc)
        return None
    if not calibration or set(calibration.get("thresholds", {})) != set(features):
        log.warning("%s was calibrated for other features: a fixed threshold per column is used", path)
        return None
    return calibration


if __name__ == "__main__":
    sys.exit(main())
