"""Incremental, causal features: one small state per product, fed one accepted tick at a time.

``update(state, tick)`` applies the stateful acceptance rules (duplicate, late, segment) and
returns the tick's feature row. No I/O, no clock: live consumer, replay and tests feed it the
same ticks and get the same rows.

Windows are event-time, trailing and half-open: a window of w seconds at tick time t holds the
ticks with t - w < ts <= t of the current segment. Each window is kept as a pointer into
per-segment prefix sums of the log returns and their squares, so a tick costs O(1) amortized
whatever the window length.
"""

from __future__ import annotations

import math

from common.featurespec import BASE_COLUMNS, TIME_COLUMNS, WINDOW_FEATURES, FeatureSpec
from features.ticks import Tick

# The layout lives on the ground floor so the config loader can hold it; re-exported for callers here.
__all__ = ["BASE_COLUMNS", "DUPLICATE", "LATE", "TIME_COLUMNS", "WINDOW_FEATURES", "FeatureSpec", "ProductState", "update"]

NAN = float("nan")
DUPLICATE = "duplicate"
LATE = "late"


class ProductState:
    """Everything one product's features need from the past; small, picklable."""

    __slots__ = (
        "spec",
        "_windows_ns",
        "_gap_ns",
        "last",
        "last_mid",
        "segment_ns",
        "times",
        "cum_ret",
        "cum_sq",
        "starts",
        "segments",
    )

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._windows_ns = tuple(round(w * 1e9) for w in spec.windows_s)
        self._gap_ns = round(spec.segment_gap_s * 1e9)
        self.last: Tick | None = None
        self.last_mid = NAN
        self.segment_ns = 0
        self.times: list[int] = []  # tick times of the segment's retained tail
        self.cum_ret: list[float] = []  # prefix sums of log returns (first tick of segment: 0)
        self.cum_sq: list[float] = []  # prefix sums of squared log returns
        self.starts: list[int] = []  # per window: index of its oldest tick
        self.segments = 0  # segments started so far

    def __getstate__(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, data: dict) -> None:
        for name, value in data.items():
            setattr(self, name, value)


def update(state: ProductState, tick: Tick, new_segment: bool = False) -> list | str:
    """Accept one valid tick and return its feature row (a list laid out as ``spec.columns``).

    Returns ``DUPLICATE`` or ``LATE`` instead when the acceptance rules refuse the tick;
    the state is then unchanged. ``new_segment`` forces a segment start (a gap the recorder saw).
    """
    product, t, price, bid, ask, bid_qty, ask_qty, _, _ = tick
    last = state.last
    if last is not None:
        if tick == last:
            return DUPLICATE
        if t < last[1]:
            return LATE
    mid = (bid + ask) * 0.5
    times, cum_ret, cum_sq, starts = state.times, state.cum_ret, state.cum_sq, state.starts
    if last is None or new_segment or t - last[1] > state._gap_ns:
        state.segment_ns = t
        state.segments += 1
        times.clear()
        cum_ret.clear()
        cum_sq.clear()
        starts[:] = [0] * len(state._windows_ns)
        r = NAN
        s_i = q_i = 0.0
    else:
        r = math.log(mid / state.last_mid)
        s_i = cum_ret[-1] + r
        q_i = cum_sq[-1] + r * r
    times.append(t)
    cum_ret.append(s_i)
    cum_sq.append(q_i)
    state.last = tick
    state.last_mid = mid
    segment_ns = state.segment_ns

    if bid_qty is not None and ask_qty is not None and bid_qty + ask_qty > 0.0:
        imbalance = (bid_qty - ask_qty) / (bid_qty + ask_qty)
    else:
        imbalance = NAN
    row = [
        product, t, segment_ns, price, bid, ask, mid, r,
        (ask - bid) / mid * 1e4, imbalance, (t - segment_ns) * 1e-9,
    ]
    i = len(times) - 1
    for k, w_ns in enumerate(state._windows_ns):
        p = starts[k]
        cutoff = t - w_ns
        while times[p] <= cutoff:
            p += 1
        starts[k] = p
        # Returns in the window are those of ticks p..i, except the segment's first tick.
        b = p - 1 if p else 0
        n = i - b
        if n >= 2:
            s = s_i - cum_ret[b]
            var = (q_i - cum_sq[b]) / n - (s / n) ** 2
            row += (math.sqrt(var) if var > 0.0 else 0.0, s, (i - p + 1) * 1e9 / w_ns)
        elif n == 1:
            row += (NAN, s_i - cum_ret[b], (i - p + 1) * 1e9 / w_ns)
        else:
            row += (NAN, NAN, (i - p + 1) * 1e9 / w_ns)
    if i > 8192 and min(starts) * 2 > i:
        _drop_head(state)
    return row


def _drop_head(state: ProductState) -> None:
    """Forget ticks no window can reach, rebasing the prefix sums to keep their precision."""
    cut = min(state.starts) - 1
    if cut <= 0:
        return
    base_r, base_q = state.cum_ret[cut], state.cum_sq[cut]
    del state.times[:cut]
    state.cum_ret[:] = [v - base_r for v in state.cum_ret[cut:]]
    state.cum_sq[:] = [v - base_q for v in state.cum_sq[cut:]]
    state.starts[:] = [p - cut for p in state.starts]
