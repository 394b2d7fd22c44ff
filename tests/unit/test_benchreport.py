"""The benchmark report writer: sections replaced in place, verdicts in the tables, and runs
that never touch the committed figures unless asked to."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from common.benchreport import HEADER, MET, NOT_MET, RECORDED, status, write_section
from common.config import REPO_ROOT


def test_status_against_a_floor_and_a_ceiling() -> None:
    assert status(26_000, at_least=100_000) == NOT_MET == "**not met**"
    assert status(100_000, at_least=100_000) == MET
    assert status(50.6, below=50) == NOT_MET
    assert status(49.9, below=50) == MET
    with pytest.raises(ValueError):
        status(1.0)
    with pytest.raises(ValueError):
        status(1.0, at_least=1, below=2)


def test_sections_are_replaced_in_place_and_others_kept(tmp_path) -> None:
    report = tmp_path / "bench.md"
    write_section("a", "## A\nfirst", report)
    write_section("b", "## B", report)
    assert write_section("a", "## A\nsecond", report) == report
    text = report.read_text()
    assert text.startswith(HEADER)
    assert "second" in text and "first" not in text and text.index("## A") < text.index("## B")


@pytest.mark.parametrize("env, expected", [
    ({}, "reports/benchmarks.local.md"),
    ({"BENCH_REPORT": str(RECORDED)}, "reports/benchmarks.md"),
])
def test_runs_write_the_local_report_unless_recording(env: dict, expected: str) -> None:
    probe = "from common.benchreport import REPORT; print(REPORT)"
    clean = {k: v for k, v in os.environ.items() if k != "BENCH_REPORT"}
    out = subprocess.run([sys.executable, "-c", probe], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == str(REPO_ROOT / expected)
