"""Test plumbing shared by the integration suites: free ports, bounded waits, script subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import orjson
import pytest

from common.config import REPO_ROOT
from common.net import free_port  # noqa: F401  (re-exported for the tests)

PYTHON = sys.executable
# Settings a developer may have exported; a test's subprocess gets only what the test passes.
PROJECT_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "MLFLOW_TRACKING_URI", "COINBASE_WS_URL", "MODEL_VARIANT",
               "MODEL_URI", "MODEL_VARIANT_FILE", "RATE_LIMIT_PER_MINUTE")



def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


class Proc:
    """A script run as a subprocess, its output in files (no pipe can fill up and block it)."""

    def __init__(self, args: list[str], workdir: Path, name: str) -> None:
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        env = {k: v for k, v in os.environ.items() if k not in PROJECT_ENV}
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen([PYTHON, *args], cwd=REPO_ROOT, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, env=env)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def wait(self, timeout_s: float = 60.0) -> int:
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
            pytest.fail(f"{self.popen.args[1]} did not exit within {timeout_s:.0f} s:\n{self.stderr()[-3000:]}")

    def stop(self, timeout_s: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def last_json(self) -> dict:
        lines = [line for line in self.stdout().splitlines() if line.startswith("{")]
        assert lines, f"no JSON line on stdout; stderr:\n{self.stderr()[-3000:]}"
        return orjson.loads(lines[-1])
