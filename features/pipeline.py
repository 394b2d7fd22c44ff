"""The one message handler: raw lines in, feature rows and counted rejections out.

The live Kafka consumer and the replay script both call ``FeaturePipeline.process`` on every
raw line, in order, so live and replay produce the same rows from the same records.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from features.online import DUPLICATE, LATE, FeatureSpec, ProductState, update
from features.ticks import Rejection, parse_line


@dataclass
class Summary:
    """Counters over everything processed so far."""

    lines: int = 0
    ticks: int = 0  # valid ticks parsed (before the stateful rules)
    accepted: int = 0  # ticks that became feature rows
    duplicates: int = 0
    late: int = 0
    segments: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> count (late included)
    skipped_frames: Counter = field(default_factory=Counter)  # channel -> count

    def as_dict(self) -> dict:
        return {
            "lines": self.lines,
            "ticks": self.ticks,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "late": self.late,
            "segments": self.segments,
            "rejected": dict(sorted(self.rejected.items())),
            "skipped_frames": dict(sorted(self.skipped_frames.items())),
        }


class FeaturePipeline:
    """Per-product feature states plus the counters; one instance per stream of records."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.states: dict[str, ProductState] = {}
        self.summary = Summary()

    def process(self, line: bytes | str) -> tuple[list[tuple], list[Rejection]]:
        """Rows for the accepted ticks of one raw line, and what it rejected (for the DLQ)."""
        summary = self.summary
        summary.lines += 1
        record = parse_line(line)
        rejections = record.rejections
        for rejection in rejections:
            summary.rejected[rejection.reason] += 1
        if record.skipped_channel is not None:
            summary.skipped_frames[record.skipped_channel] += 1
        rows = []
        for tick in record.ticks:
            summary.ticks += 1
            state = self.states.get(tick.product_id)
            if state is None:
                state = self.states[tick.product_id] = ProductState(self.spec)
            # A recorder-seen gap starts a segment for every product in the record.
            segments_before = state.segments
            result = update(state, tick, record.new_segment)
            if result is DUPLICATE:
                summary.duplicates += 1
            elif result is LATE:
                summary.late += 1
                summary.rejected[LATE] += 1
                rejections = [*rejections, Rejection(LATE, f"{tick.product_id} tick before the previous one")]
            else:
                summary.accepted += 1
                summary.segments += state.segments - segments_before
                rows.append(result)
        return rows, rejections
