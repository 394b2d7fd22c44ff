"""The project's scripts run as background services: output in files, stopped with SIGTERM.

Used by the live demo and the benchmarks, which start the offline market, the ingestor, the
featurizer, the scorer and the API side by side and stop them all at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from common.config import REPO_ROOT


class Service:
    """One script as a subprocess (``python <script> args``), its stdout and stderr in ``workdir``."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")
