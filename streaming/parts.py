"""Writes the featurizer's Parquet parts and checkpoints in order, in a thread of its own.

A job is one flush: for each partition with new records, its part first, then the checkpoint
that counts it, so a crash between the two rewrites the same part (same name, same rows) from
the previous checkpoint. Files take tens of milliseconds, which would otherwise delay the
rows behind them; the offsets are committed once the job is done.
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from features.online import FeatureSpec
from features.pipeline import feature_schema
from features.replay import ParquetRows
from streaming.checkpoint import FeaturizerError, write_atomically

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionFlush:
    partition: int
    part: Path | None  # None: no new rows (the checkpoint still moves on)
    batches: list  # FeatureBatch, in order
    checkpoint_path: Path
    checkpoint: bytes  # pickled PartitionCheckpoint, a snapshot taken at the flush
    offset: int  # next offset to read, committed to the group once written


class PartsWriter:
    """One writer thread; ``take_written`` hands the committed-to-be offsets back to the consumer thread."""

    def __init__(self, spec: FeatureSpec, directory: Path) -> None:
        self.spec = spec
        self.directory = directory
        self._jobs: queue.Queue = queue.Queue(maxsize=4)  # backpressure when the disk is slow
        self._lock = threading.Lock()
        self._written: dict[int, int] = {}  # partition -> offset, since the last take
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="featurizer-writer", daemon=True)
        self._thread.start()

    def submit(self, flushes: list[PartitionFlush]) -> None:
        self.raise_failure()
        self._jobs.put(flushes)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._failure is None:
                    for flush in job:
                        self._write(flush)
                        with self._lock:
                            self._written[flush.partition] = flush.offset
            except (OSError, pickle.PickleError, ValueError) as exc:
                log.error("cannot write to %s: %s", self.directory, exc)
                self._failure = exc
            finally:
                self._jobs.task_done()

    def _write(self, flush: PartitionFlush) -> None:
        if flush.part is not None:
            part = ParquetRows(flush.part, feature_schema(self.spec))
            part.write(batch.to_arrow() for batch in flush.batches)
            part.close()
        write_atomically(flush.checkpoint_path, flush.checkpoint)

    def take_written(self) -> dict[int, int]:
        """Offsets of the partitions written since the last call (partition -> next offset)."""
        with self._lock:
            written, self._written = self._written, {}
        return written

    def wait(self) -> None:
        self._jobs.join()
        self.raise_failure()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise FeaturizerError(f"cannot write to {self.directory} ({self._failure}): "
                                  "free space or fix permissions, then restart")

    def stop(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(60)
