"""Line-oriented files that survive a crash: the raw mirror and the journal's file.

Every line goes out in one ``os.write`` on an O_APPEND descriptor, so once ``write`` returns
the line belongs to the kernel: a crash of the process loses nothing already written, and
at most the line being written. ``fsync`` runs at most once per ``fsync_every_s`` so a crash
of the whole machine loses at most that much.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path


log = logging.getLogger(__name__)


class LineFile:
    """An append-only file of newline-terminated lines."""

    def __init__(self, path: Path, fsync_every_s: float = 1.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._fsync_every_s = fsync_every_s
        self._last_sync = time.monotonic()
        self._dirty = False
        self.bytes = os.fstat(self._fd).st_size

    @property
    def fd(self) -> int:
        return self._fd

    def write(self, line: bytes) -> None:
        data = line + b"\n"
        written = os.write(self._fd, data)
        while written < len(data):  # short writes are rare but legal
            written += os.write(self._fd, data[written:])
        self.bytes += len(data)
        self._dirty = True
        if time.monotonic() - self._last_sync >= self._fsync_every_s:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1


class RotatingMirror:
    """The ``--save-disk`` copy of ``ticks.raw``: NDJSON files that rotate by age and size.

    Names sort in time order (``raw-YYYYmmddTHHMMSSZ-<pid>.ndjson``), so replaying
    ``data/raw/*.ndjson`` sorted replays the records in the order they were received.
    A new process never appends to an old file.
    """

    def __init__(self, directory: Path, rotate_s: float = 3600.0, rotate_bytes: int = 256 << 20,
                 prefix: str = "raw") -> None:
        self.directory = directory
        self.prefix = prefix
        self.rotate_s = rotate_s
        self.rotate_bytes = rotate_bytes
        self._file: LineFile | None = None
        self._opened = 0.0
        self.files: list[Path] = []

    def write(self, line: bytes) -> None:
        now = time.monotonic()
        if self._file is None or now - self._opened >= self.rotate_s or self._file.bytes >= self.rotate_bytes:
            self._open_next(now)
        assert self._file is not None
        self._file.write(line)

    def _open_next(self, now: float) -> None:
        if self._file is not None:
            self._file.close()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{self.prefix}-{stamp}-{os.getpid()}.ndjson"
        self._file = LineFile(path)
        self._opened = now
        self.files.append(path)
        log.info("writing %s records to %s", self.prefix, path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
