"""The ingestor's write-ahead journal: every record is on disk before Kafka is asked to take it.

One file of lines ``topic<TAB>key<TAB>value`` in arrival order, and beside it the byte offset
of the first record Kafka has not acknowledged (``<name>.acked``). A record is appended with
one ``os.write`` before it is handed to the producer, so a crash of the ingestor (even
``kill -9``) loses no record it has read from the socket: the next run sends everything after
the acknowledged offset first. The offset is saved at most every ``mark_every_s`` (a crash may
repeat that much: at least once), and when every record is acknowledged the file is emptied.

While the broker is unreachable, this file is the spool: records simply wait in it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from streaming.sinks import LineFile

log = logging.getLogger(__name__)

COMPACT_BYTES = 4 << 20  # empty the file once everything in it is acknowledged and it is this big
SKIP = ""  # the topic of an unreadable record: acknowledged without sending


class JournalBusy(RuntimeError):
    """Another process writes this journal; the message says what to do."""


@dataclass(frozen=True)
class Entry:
    """One journaled record and where it ends in its generation of the file."""

    topic: str
    key: bytes | None
    value: bytes
    end: int  # byte offset just past this record
    generation: int  # bumped every time the file is emptied


def encode(topic: str, key: bytes | None, value: bytes) -> bytes:
    if "\t" in topic or (key is not None and (b"\t" in key or b"\n" in key)) or b"\n" in value:
        raise ValueError("journal records are one line: topic and key without tabs, value without newlines")
    return b"%s\t%s\t%s" % (topic.encode(), key or b"", value)


def decode(line: bytes) -> tuple[str, bytes | None, bytes]:
    topic, key, value = line.split(b"\t", 2)
    return topic.decode(), key or None, value


class Journal:
    """Append from any thread; acknowledge, read back and compact from the publisher thread."""

    def __init__(self, path: Path, mark_every_s: float = 0.1) -> None:
        self.path = path
        self.mark_path = path.with_name(path.name + ".acked")
        self.mark_every_s = mark_every_s
        self.generation = 0
        self._lock = threading.Lock()
        self._file = LineFile(path)
        try:
            fcntl.flock(self._file.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the process ends
        except BlockingIOError as exc:
            self._file.close()
            raise JournalBusy(f"another ingestor writes {path}: stop it, or give this one another "
                              "--spool-dir (one journal per product set)") from exc
        self._drop_torn_tail()
        self.size = self._file.bytes
        self.acked = self._read_mark()
        self._saved_mark = self.acked
        self._last_mark = time.monotonic()

    def _drop_torn_tail(self) -> None:
        """A crash in the middle of a write leaves a line without its newline: that record was never sent."""
        size = self._file.bytes
        if not size:
            return
        with open(self.path, "rb") as handle:
            handle.seek(max(0, size - 1))
            if handle.read(1) == b"\n":
                return
            handle.seek(0)
            keep = handle.read().rfind(b"\n") + 1
        log.warning("%s ends in a torn record (a crash while writing it): dropping its %d bytes",
                    self.path, size - keep)
        os.truncate(self.path, keep)
        self._file.bytes = keep

    def _read_mark(self) -> int:
        try:
            mark = int(self.mark_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s): sending the whole journal again (at least once)", self.mark_path, exc)
            return 0
        return mark if 0 <= mark <= self.size else 0  # beyond the end: the file was emptied after it was saved

    @property
    def pending_bytes(self) -> int:
        return self.size - self.acked

    def append(self, topic: str, key: bytes | None, value: bytes) -> Entry:
        """Write one record (durable against a process crash when this returns)."""
        line = encode(topic, key, value)
        with self._lock:
            self._file.write(line)
            self.size = self._file.bytes
            return Entry(topic, key, value, self.size, self.generation)

    def ack(self, entry: Entry) -> None:
        """Kafka acknowledged ``entry`` and everything before it."""
        if entry.generation == self.generation and entry.end > self.acked:
            self.acked = entry.end
            self.save_mark()

    def is_done(self, entry: Entry) -> bool:
        """True when ``entry`` needs no sending: acknowledged already, or from an emptied generation."""
        return entry.generation != self.generation or entry.end <= self.acked

    def save_mark(self, force: bool = False) -> None:
        """Persist the acknowledged offset (at most every ``mark_every_s`` unless ``force``)."""
        if self.acked == self._saved_mark:
            return
        now = time.monotonic()
        if not force and now - self._last_mark < self.mark_every_s:
            return
        tmp = self.mark_path.with_name(self.mark_path.name + ".tmp")
        tmp.write_text(f"{self.acked}\n")
        os.replace(tmp, self.mark_path)
        self._saved_mark = self.acked
        self._last_mark = now

    def unacked(self, limit_bytes: int) -> Iterator[Entry]:
        """Records after the acknowledged offset, as far as the file reaches now, up to about ``limit_bytes``."""
        generation, start = self.generation, self.acked
        with open(self.path, "rb") as handle:
            handle.seek(start)
            data = handle.read(limit_bytes)
            if data and not data.endswith(b"\n"):
                data += handle.readline()  # finish the last record (a torn tail cannot be: appends are whole)
        offset = start
        for line in data.splitlines(keepends=True):
            offset += len(line)
            if not line.endswith(b"\n"):
                break  # being written right now: the next read gets it
            try:
                topic, key, value = decode(line[:-1])
            except ValueError as exc:  # only a damaged disk makes one: appends are validated
                log.error("%s: unreadable record at byte %d is skipped: %s", self.path, offset - len(line), exc)
                topic, key, value = SKIP, None, b""
            yield Entry(topic, key, value, offset, generation)

    def pending_records(self) -> int:
        """How many records wait after the acknowledged offset (counts lines, a MiB at a time)."""
        count = 0
        with open(self.path, "rb") as handle:
            handle.seek(self.acked)
            while block := handle.read(1 << 20):
                count += block.count(b"\n")
        return count

    def compact(self) -> bool:
        """Empty the file when everything in it is acknowledged and it has grown; True when it did."""
        with self._lock:
            if self.acked != self.size or self.size < COMPACT_BYTES:
                return False
            os.ftruncate(self._file.fd, 0)
            self._file.bytes = self.size = 0
            self.generation += 1
            self.acked = 0
            self.save_mark(force=True)  # before any new append: a stale mark would skip new records
            return True

    def close(self) -> None:
        with self._lock:
            self.save_mark(force=True)
            self._file.close()
