"""The one message handler: raw lines in, feature rows and counted rejections out.

The live Kafka consumer and the replay script both hand ``FeaturePipeline`` their raw lines in
order, the consumer in micro-batches (``process_batch``), replay in large buffers
(``process_buffer``), so live and replay produce the same rows from the same records. Lines
become columns of ticks in compiled code (``features.scan``; the rare line it is not sure of goes
through ``features.ticks.parse_line``), and the columns go through the compiled fold
(``features.native``), which computes what ``features.online.update`` specifies, bit for bit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from features.native import ACCEPTED, LATE as LATE_STATUS, NO_SEQUENCE, FoldConstants, NativeState, fold
from features.online import LATE, FeatureSpec, ProductState
from features.scan import FALLBACK, TickColumns, scan_lines
from features.ticks import Rejection, Tick, parse_line


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

    def add(self, other: Summary) -> None:
        """Add another stream's counters (for files replayed apart)."""
        for name in ("lines", "ticks", "accepted", "duplicates", "late", "segments"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected.update(other.rejected)
        self.skipped_frames.update(other.skipped_frames)


def feature_schema(spec: FeatureSpec) -> pa.Schema:
    """Arrow schema of the feature rows: times as UTC timestamps, the product as text, floats."""
    fields = [pa.field("product_id", pa.string()), pa.field("ts", pa.timestamp("ns", tz="UTC")),
              pa.field("segment", pa.timestamp("ns", tz="UTC"))]
    return pa.schema(fields + [pa.field(name, pa.float64()) for name in spec.columns[3:]])


class FeatureBatch:
    """Feature rows of a batch of records, as columns; ``line`` is the record each row came from."""

    __slots__ = ("spec", "products", "product", "ts", "segment", "values", "line")

    def __init__(self, spec: FeatureSpec, products: list[str], product: np.ndarray, ts: np.ndarray,
                 segment: np.ndarray, values: np.ndarray, line: np.ndarray) -> None:
        self.spec = spec
        self.products = products  # names of the product codes
        self.product = product  # code of each row
        self.ts = ts  # ns since epoch
        self.segment = segment  # ns since epoch
        self.values = values  # rows x the float columns (spec.columns[3:])
        self.line = line

    def __len__(self) -> int:
        return len(self.ts)

    def product_names(self) -> list[str]:
        names = self.products
        return [names[code] for code in self.product.tolist()]

    def rows(self) -> list[list]:
        """Rows laid out as ``spec.columns`` (what ``features.online.update`` returns)."""
        return [[p, t, s, *v] for p, t, s, v in zip(self.product_names(), self.ts.tolist(), self.segment.tolist(),
                                                    self.values.tolist())]

    def to_arrow(self) -> pa.RecordBatch:
        schema = feature_schema(self.spec)
        names = pa.array(self.products, type=pa.string()).take(pa.array(self.product))
        columns = np.ascontiguousarray(self.values.T)
        arrays = [names, pa.array(self.ts).view(schema.field("ts").type),
                  pa.array(self.segment).view(schema.field("segment").type)]
        arrays += [pa.array(column) for column in columns]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)


class FeaturePipeline:
    """Per-product feature states plus the counters; one instance per stream of records.

    ``states`` (product -> ``NativeState``) pickles, so a checkpoint carries a stream on.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.states: dict[str, NativeState] = {}
        self.summary = Summary()
        self._constants = FoldConstants(spec)

    def restore(self, states: dict) -> None:
        """Take over states, ``NativeState`` or ``features.online.ProductState`` (older checkpoints)."""
        self.states = {product: NativeState.from_python(product, state) if isinstance(state, ProductState) else state
                       for product, state in states.items()}

    def process(self, line: bytes | str) -> tuple[list[list], list[Rejection]]:
        """Rows for the accepted ticks of one raw line, and what it rejected (for the DLQ)."""
        batch, rejections = self.process_batch([line])
        return batch.rows(), rejections.get(0, [])

    def process_batch(self, values: Sequence[bytes | str]) -> tuple[FeatureBatch, dict[int, list[Rejection]]]:
        """Rows for a batch of raw records, in order, and the rejections of each record that has any."""
        values = [v.encode() if isinstance(v, str) else v for v in values]
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        ends = np.cumsum(lengths + 1) - 1
        starts = ends - lengths
        buf = np.frombuffer(b"\n".join(values), dtype=np.uint8)
        return self._process(buf, starts, ends, values.__getitem__)

    def process_buffer(self, buf: np.ndarray, starts: np.ndarray,
                       ends: np.ndarray) -> tuple[FeatureBatch, dict[int, list[Rejection]]]:
        """Rows for the lines ``buf[starts[i]:ends[i]]`` (a block of an NDJSON file), in order."""
        return self._process(buf, starts, ends, lambda i: buf[starts[i]:ends[i]].tobytes())

    def _process(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                 line_of: Callable[[int], bytes]) -> tuple[FeatureBatch, dict[int, list[Rejection]]]:
        summary = self.summary
        ticks, rejections = parse_columns(buf, starts, ends, line_of, summary)
        n = len(ticks)
        status = np.zeros(n, dtype=np.int8)
        segment = np.zeros(n, dtype=np.int64)
        values = np.empty((n, self._constants.n_floats))
        if n:
            codes = ticks.product
            order = np.argsort(codes, kind="stable")
            cuts = np.flatnonzero(np.diff(codes[order])) + 1
            for group in np.split(order, cuts):
                name = ticks.products[codes[group[0]]]
                state = self.states.get(name)
                if state is None:
                    state = self.states[name] = NativeState(name, self.spec)
                before = state.segments
                fold(state, self._constants, group, ticks.ts, ticks.price, ticks.bid, ticks.ask, ticks.bid_qty,
                     ticks.ask_qty, ticks.volume, ticks.sequence, ticks.forced, status, segment, values)
                summary.segments += state.segments - before
        accepted = status == ACCEPTED
        n_accepted = int(accepted.sum())
        summary.accepted += n_accepted
        if n_accepted < n:
            late = np.flatnonzero(status == LATE_STATUS)
            summary.late += len(late)
            summary.duplicates += n - n_accepted - len(late)
            for j in late.tolist():
                product = ticks.products[ticks.product[j]]
                rejection = Rejection(LATE, f"{product} tick before the previous one")
                rejections.setdefault(int(ticks.line[j]), []).append(rejection)
                summary.rejected[LATE] += 1
            batch = FeatureBatch(self.spec, ticks.products, ticks.product[accepted], ticks.ts[accepted],
                                 segment[accepted], values[accepted], ticks.line[accepted])
        else:
            batch = FeatureBatch(self.spec, ticks.products, ticks.product, ticks.ts, segment, values, ticks.line)
        return batch, rejections


def parse_columns(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, line_of: Callable[[int], bytes],
                  summary: Summary) -> tuple[TickColumns, dict[int, list[Rejection]]]:
    """The valid ticks of the lines, as columns in line order, and each rejected line's rejections.

    Counts lines, ticks, rejections and skipped frames into ``summary``. Lines the compiled scanner
    leaves go through ``parse_line`` (``line_of(i)`` gives line i's bytes).
    """
    ticks, line_kind = scan_lines(buf, starts, ends)
    rejections: dict[int, list[Rejection]] = {}
    fallback = np.flatnonzero(line_kind == FALLBACK)
    if len(fallback):
        parsed: list[tuple[int, Tick, bool]] = []
        for i in fallback.tolist():
            record = parse_line(line_of(i))
            if record.rejections:
                rejections[i] = list(record.rejections)
                for rejection in record.rejections:
                    summary.rejected[rejection.reason] += 1
            if record.skipped_channel is not None:
                summary.skipped_frames[record.skipped_channel] += 1
            parsed.extend((i, tick, record.new_segment) for tick in record.ticks)
        if parsed:
            ticks = _merge(ticks, parsed)
    summary.lines += len(starts)
    summary.ticks += len(ticks)
    return ticks, rejections


def _merge(ticks: TickColumns, parsed: list[tuple[int, Tick, bool]]) -> TickColumns:
    """The scanned ticks and those ``parse_line`` gave, in line order."""
    names = list(ticks.products)
    index = {name: i for i, name in enumerate(names)}
    extra = TickColumns(len(parsed))
    for j, (line, tick, forced) in enumerate(parsed):
        product, ts, price, bid, ask, bid_qty, ask_qty, volume, sequence = tick
        code = index.get(product)
        if code is None:
            code = index[product] = len(names)
            names.append(product)
        extra.line[j] = line
        extra.product[j] = code
        extra.ts[j] = ts
        extra.price[j] = price
        extra.bid[j] = bid
        extra.ask[j] = ask
        extra.bid_qty[j] = np.nan if bid_qty is None else bid_qty
        extra.ask_qty[j] = np.nan if ask_qty is None else ask_qty
        extra.volume[j] = np.nan if volume is None else volume
        extra.sequence[j] = NO_SEQUENCE if sequence is None else sequence
        extra.forced[j] = forced
    merged = TickColumns(0)
    for name in TickColumns.__slots__[:-1]:
        setattr(merged, name, np.concatenate([getattr(ticks, name), getattr(extra, name)]))
    merged.products = names
    return merged.take(np.argsort(merged.line, kind="stable"))
