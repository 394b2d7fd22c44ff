"""Fixtures shared by the integration suites: a real local broker and script subprocesses.

Every service is started on a free loopback port and stopped at teardown.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming.broker import LocalBroker
from testkit import Proc, free_port


@pytest.fixture
def broker(tmp_path: Path):
    """A real broker on a free port; ``broker.stop()`` / ``broker.start()`` keep the port."""
    local = LocalBroker(free_port(), log_path=tmp_path / "broker.log")
    local.start()
    yield local
    local.stop()


@pytest.fixture
def spawn(tmp_path: Path):
    """Factory: ``spawn(name, [script, args...])`` runs a script; all are killed at teardown."""
    procs: list[Proc] = []

    def start(name: str, args: list[str]) -> Proc:
        proc = Proc(args, tmp_path, name)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait(10)
