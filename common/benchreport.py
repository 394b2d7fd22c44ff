"""Write one benchmark's section into a benchmark report, leaving the other sections alone.

Runs write to reports/benchmarks.local.md (not tracked), so measuring changes no committed file;
`make bench-record` sets ``BENCH_REPORT=reports/benchmarks.md`` to refresh the committed figures.
Every figure that has a target says in its table whether it was met.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

from common.config import REPO_ROOT

RECORDED = REPO_ROOT / "reports" / "benchmarks.md"
REPORT = Path(os.environ.get("BENCH_REPORT") or REPO_ROOT / "reports" / "benchmarks.local.md")
HEADER = (
    "# Benchmarks\n\n"
    "Figures measured by `make bench` on the machine named in each section. "
    "Each section is rewritten by its own benchmark script; rerun it to refresh.\n"
)
MET, NOT_MET = "met", "**not met**"


def machine_line() -> str:
    """Where and when the figures were taken."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"_Measured {now} on {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}._"


def status(value: float, *, at_least: float | None = None, below: float | None = None) -> str:
    """``met`` or ``**not met**`` for a measured value against its target (give exactly one bound)."""
    if (at_least is None) == (below is None):
        raise ValueError("give exactly one of at_least and below")
    ok = value >= at_least if at_least is not None else value < below
    return MET if ok else NOT_MET


def load_average() -> float:
    """The machine's load average over the last minute, to print beside a figure taken on a shared machine."""
    import os

    return os.getloadavg()[0]


def write_section(name: str, body: str, report: Path | None = None) -> Path:
    """Replace (or append) the section delimited by markers named ``name``; return the file written."""
    report = report or REPORT
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = report.read_text() if report.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)
    return report
