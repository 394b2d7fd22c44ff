"""One checkpoint per input partition, in a directory the featurizers of a group share.

A partition's checkpoint holds everything needed to go on from it: the next offset, the
feature state of the products keyed to it, its counters and the number of its next Parquet
part. Whoever owns the partition (after a restart, a rebalance or a crash of another
featurizer) loads it and seeks there, so the rows go on exactly as replay computes them.

Ownership is fenced with an exclusive ``flock`` per partition: a featurizer processes a
partition only while it holds that lock, and the kernel releases it when the process dies,
even by ``kill -9``. So two featurizers never write one partition's parts or checkpoint at
once, even when the group's view of who owns what lags behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from features.online import FeatureSpec
from features.pipeline import Summary

CHECKPOINT_VERSION = 2


class FeaturizerError(RuntimeError):
    """A condition the operator must fix; the message says how."""


@dataclass
class PartitionCheckpoint:
    """What the next owner of one input partition needs; written after that partition's part."""

    spec: FeatureSpec
    topic: str
    topic_id: str | None  # the input topic's id: offsets mean nothing in a re-created topic
    partition: int
    offset: int  # next offset to read
    states: dict  # product -> NativeState (ProductState in older checkpoints), for this partition's products
    summary: Summary
    next_part: int
    recent: bytes = b""  # RecentRecords.dump(): digests of the latest raw records
    version: int = CHECKPOINT_VERSION


def checkpoint_path(directory: Path, partition: int) -> Path:
    return directory / f"checkpoint-p{partition:03d}.pkl"


def part_path(directory: Path, partition: int, number: int) -> Path:
    """Parts sort by partition, then in the order they were written."""
    return directory / f"part-p{partition:03d}-{number:08d}.parquet"


def load_checkpoint(directory: Path, spec: FeatureSpec, topic: str, partition: int) -> PartitionCheckpoint | None:
    """The partition's checkpoint, None when there is none; FeaturizerError when it does not fit."""
    path = checkpoint_path(directory, partition)
    if not path.exists():
        return None
    try:
        with open(path, "rb") as handle:
            checkpoint = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
        raise FeaturizerError(f"{path} cannot be read ({exc}): move the directory away to start afresh") from exc
    if not isinstance(checkpoint, PartitionCheckpoint) or checkpoint.version != CHECKPOINT_VERSION:
        raise FeaturizerError(f"{path} is not a checkpoint of this version: move the directory away to start afresh")
    if checkpoint.spec != spec or checkpoint.topic != topic or checkpoint.partition != partition:
        raise FeaturizerError(
            f"{path} was written for {checkpoint.topic}[{checkpoint.partition}] with {checkpoint.spec}; now "
            f"{topic}[{partition}] with {spec}: use another --group or move the directory away")
    return checkpoint


def write_atomically(path: Path, data: bytes) -> None:
    """A reader sees the old or the new file, never a mix, even after a power cut."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class PartitionLock:
    """The exclusive right to process one partition (a ``flock`` on a file beside its checkpoint)."""

    def __init__(self, directory: Path, partition: int) -> None:
        self.path = directory / f".lock-p{partition:03d}"
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> bool:
        """True when this process now holds it; False while another process does."""
        if self._fd >= 0:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = -1


class RecentRecords:
    """Digests of a partition's recent raw records, to drop exact redeliveries.

    Delivery into ``ticks.raw`` is at least once: around a broker outage or an ingestor crash a
    record can be written twice, byte for byte (same receive time, same frame). A repeat comes
    within the records in flight or journaled but not yet marked acknowledged, a few thousand
    at most, so a window of ``size`` digests catches it; two different records never share
    their bytes, and 64-bit digests make a false match about one in 10^15 per record.
    """

    def __init__(self, size: int = 16_384, digests: bytes = b"") -> None:
        self.size = size
        self._order: deque[bytes] = deque((digests[i:i + 8] for i in range(0, len(digests), 8)), maxlen=size)
        self._seen: set[bytes] = set(self._order)

    def repeat(self, value: bytes) -> bool:
        """True when ``value`` was seen in the window; otherwise remembers it."""
        digest = hashlib.blake2b(value, digest_size=8).digest()
        if digest in self._seen:
            return True
        if len(self._order) == self.size:
            self._seen.discard(self._order[0])
        self._order.append(digest)
        self._seen.add(digest)
        return False

    def dump(self) -> bytes:
        return b"".join(self._order)
