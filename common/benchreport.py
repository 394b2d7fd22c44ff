"""Write one benchmark's section into reports/benchmarks.md, leaving the other sections alone."""

from __future__ import annotations

import platform
import re
from datetime import datetime, timezone
from pathlib import Path

from common.config import REPO_ROOT

REPORT = REPO_ROOT / "reports" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Figures measured by `make bench` on the machine named in each section. "
    "Each section is rewritten by its own benchmark script; rerun it to refresh.\n"
)


def machine_line() -> str:
    """Where and when the figures were taken."""
    import os

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"_Measured {now} on {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}._"


def write_section(name: str, body: str, report: Path = REPORT) -> None:
    """Replace (or append) the section delimited by markers named ``name``."""
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
