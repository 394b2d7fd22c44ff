"""Progress feedback: lines in logs for long work only, a redrawn line on a terminal, silence when off."""

from __future__ import annotations

import io
import threading
import time

import pytest

from common.progress import steps, working


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_steps_in_a_log_write_one_line_per_item() -> None:
    out = io.StringIO()
    assert list(steps(["a", "b", "c"], "fitting", unit="model", stream=out)) == ["a", "b", "c"]
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "fitting: 1/3 models done", "fitting: 2/3 models done", "fitting: 3/3 models done"]


def test_steps_on_a_terminal_draw_a_bar() -> None:
    out = Terminal()
    list(steps(range(4), "logging runs", stream=out))
    assert "logging runs" in out.getvalue() and "4/4" in out.getvalue()


def test_long_work_in_a_log_reports_heartbeats_and_duration() -> None:
    out = io.StringIO()
    with working("Evidently report", every_s=0.05, stream=out):
        time.sleep(0.3)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Evidently report: still working, ")
    assert lines[-1].startswith("Evidently report: done in ")
    assert float(lines[-1].split("done in ")[1].split()[0]) >= 0.3


def test_short_work_in_a_log_stays_quiet_so_an_error_stays_one_line() -> None:
    out = io.StringIO()
    with pytest.raises(ValueError, match="boom"):
        with working("PDF", every_s=5, stream=out):
            raise ValueError("boom")
    assert out.getvalue() == ""
    assert not [t for t in threading.enumerate() if t.name == "progress: PDF"]


def test_long_work_that_fails_says_so() -> None:
    out = io.StringIO()
    with pytest.raises(ValueError):
        with working("PDF", every_s=0.05, stream=out):
            time.sleep(0.2)
            raise ValueError("boom")
    assert out.getvalue().splitlines()[-1].startswith("PDF: failed after ")


def test_working_on_a_terminal_redraws_one_line() -> None:
    out = Terminal()
    with working("MLflow", stream=out):
        time.sleep(1.2)
    text = out.getvalue()
    assert text.startswith("MLflow ...") and "\rMLflow ... 1 s" in text
    assert text.endswith("s\n") and text.count("\n") == 1


def test_switched_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLSPIKE_PROGRESS", "0")
    out = Terminal()
    assert list(steps([1, 2], "x", stream=out)) == [1, 2]
    with working("y", stream=out):
        time.sleep(1.1)
    assert out.getvalue() == ""
