"""Stall detection for a consumer: records wait (lag above zero) and nothing moves.

``StallWatch`` is the pure decision, fed what the consumer knows (its positions) and what the
broker says (end offsets, the group's committed offsets); ``LagProbe`` asks the broker with its
own admin client, so a consumer wedged inside its group coordination cannot wedge the probe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError

from common.kafka import BOOTSTRAP_TIMEOUT_MS

log = logging.getLogger(__name__)


@dataclass
class Offsets:
    ends: dict[int, int]  # partition -> end of the log
    committed: dict[int, int]  # partition -> the group's committed offset (absent: none)


class StallWatch:
    """Says when to rejoin: lag above zero and no progress for ``stall_s``.

    Progress is any move of our own positions, or (when we own no partition) of the group's
    committed offsets; lag is counted on the partitions we own, or on the whole group when we
    own none (an idle member of a healthy group sees the others commit and never fires).
    """

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self._last_seen: tuple | None = None
        self._since: float | None = None  # when lag was first seen without progress

    def observe(self, now: float, positions: dict[int, int], offsets: Offsets) -> int:
        """Returns the lag when stalled (positive), else 0."""
        if positions:
            lag = sum(max(0, offsets.ends.get(p, 0) - pos) for p, pos in positions.items())
            seen = ("own", tuple(sorted(positions.items())))
        else:
            lag = sum(max(0, end - offsets.committed.get(p, 0)) for p, end in offsets.ends.items())
            seen = ("group", tuple(sorted(offsets.committed.items())))
        if lag == 0 or seen != self._last_seen:
            self._last_seen = seen
            self._since = now if lag else None
            return 0
        if self._since is None:
            self._since = now
        return lag if now - self._since >= self.stall_s else 0

    def reset(self) -> None:
        self._last_seen = self._since = None


class LagProbe:
    """End offsets of a topic and a group's committed offsets, from a kept admin client."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self._admin: KafkaAdminClient | None = None

    def offsets(self, partitions: list[int]) -> Offsets | None:
        """None when the broker cannot answer now (an outage is not a stall)."""
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000,
                                               bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
            tps = {TopicPartition(self.topic, p): OffsetSpec.LATEST for p in partitions}
            ends = {tp.partition: info.offset for tp, info in self._admin.list_partition_offsets(tps).items()}
            groups = self._admin.list_group_offsets(self.group)
            committed = {tp.partition: meta.offset for tp, meta in groups.get(self.group, {}).items()
                         if tp.topic == self.topic and meta.offset >= 0}
        except KafkaError as exc:
            log.debug("lag probe: %r", exc)
            self.close()
            return None
        return Offsets(ends, committed)

    def close(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except KafkaError as exc:
                log.debug("closing the lag probe: %s", exc)
            self._admin = None
