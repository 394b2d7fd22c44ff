"""Run the broker-outage fault test many times in a row and write the "outage" section of the benchmark report.

    python scripts/bench_outage.py [--runs 10] [--no-write]

The test (tests/streaming/test_streaming_faults.py, broker stopped for 20 s then restarted with
its data, on Apache Kafka) plays the recording through ws_ingest.py and the featurizer and
asserts that every frame reaches ticks.raw exactly once and the feature rows equal replay. A test
that passes only sometimes is a failing test: this counts how many of --runs consecutive runs
pass, and how long each took. Exits 1 unless every run passed.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from common.benchreport import machine_line, write_section
from common.config import REPO_ROOT
from common.logs import setup_logging
from streaming.bench import LoadWatch

log = logging.getLogger(__name__)
TEST_FILE = "tests/streaming/test_streaming_faults.py"
SELECTION = "broker_down and stop"


@dataclass
class Run:
    passed: bool
    test_s: float  # the test itself, as pytest timed it (set-up and teardown included)
    wall_s: float  # the whole pytest process
    message: str  # why it failed (first line), or ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="consecutive runs (default 10)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write the report")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def run_once(workdir: Path, index: int) -> Run:
    """One pytest process running the selected test; its junit XML says what happened."""
    report = workdir / f"run-{index}.xml"
    output = workdir / f"run-{index}.log"
    command = [sys.executable, "-m", "pytest", TEST_FILE, "-k", SELECTION, "-q", "-p", "no:cacheprovider",
               f"--junitxml={report}"]
    started = time.monotonic()
    with open(output, "wb") as out:
        code = subprocess.run(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    wall_s = time.monotonic() - started
    if not report.exists():
        return Run(False, 0.0, wall_s, f"pytest exited with code {code} and wrote no report")
    cases = list(ET.parse(report).getroot().iter("testcase"))
    if len(cases) != 1:
        return Run(False, 0.0, wall_s, f"the selection {SELECTION!r} ran {len(cases)} tests, not 1")
    problem = next((child for child in cases[0] if child.tag in ("failure", "error", "skipped")), None)
    passed = code == 0 and problem is None
    message = "" if passed else _why(problem, code)
    if not passed:
        log.warning("run %d failed: %s (output in %s)", index, message, output)
        sys.stderr.write(output.read_text(errors="replace")[-4000:])
    return Run(passed, float(cases[0].get("time", 0.0)), wall_s, message)


def _why(problem: ET.Element | None, code: int) -> str:
    """The first line of pytest's reason for a failed, erroring or skipped test."""
    if problem is None:
        return f"pytest exited with code {code}"
    text = (problem.get("message") or "").strip()
    return f"{problem.tag}: {text.splitlines()[0][:300]}" if text else problem.tag


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    if args.runs < 1:
        print("bench_outage: --runs must be at least 1", file=sys.stderr)
        return 2
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp, LoadWatch() as load:
        for index in range(1, args.runs + 1):
            runs.append(run_once(Path(tmp), index))
            log.info("run %d of %d: %s in %.0f s", index, args.runs, "passed" if runs[-1].passed else "FAILED",
                     runs[-1].wall_s)
    body = render(runs, load.line())
    print(body)
    if not args.no_write:
        print(f"written to {write_section('outage', body)}")
    return 0 if all(r.passed for r in runs) else 1


def render(runs: list[Run], load: str) -> str:
    passed = sum(r.passed for r in runs)
    rows = "\n".join(f"| {i} | {'passed' if r.passed else '**failed**'} | {r.test_s:.1f} | {r.wall_s:.1f} | "
                     f"{r.message.replace('|', '/')} |" for i, r in enumerate(runs, 1))
    durations = sorted(r.test_s for r in runs)
    return f"""## Broker outage test, {len(runs)} runs in a row

{machine_line()} {load[0].upper() + load[1:]}.

`pytest {TEST_FILE} -k "{SELECTION}"` run {len(runs)} times, one after the other: Apache Kafka is
stopped (SIGTERM) mid-stream for 20 s and started again with its data while ws_ingest.py and the
featurizer keep running; the test asserts that every ticker frame reaches ticks.raw exactly once
(exact repeats dropped) and that the featurizer's Parquet parts equal replay of ticks.raw.

| measure | value | target | met |
|---|---|---|---|
| runs passed | **{passed} of {len(runs)}** | {len(runs)} of {len(runs)} | {"met" if passed == len(runs) else "**not met**"} |
| test duration, min / median / max | {durations[0]:.1f} / {statistics.median(durations):.1f} / {durations[-1]:.1f} s | | |

| run | result | test s | pytest process s | failure |
|---|---|---|---|---|
{rows}

Rerun: `python scripts/bench_outage.py --runs 10` (part of `make bench`).
"""


if __name__ == "__main__":
    sys.exit(main())
