"""Incremental, causal features: one small state per product, fed one accepted tick at a time.

``update(state, tick)`` applies the stateful acceptance rules (duplicate, late, segment) and
returns the tick's feature row. No I/O, no clock: live consumer, replay and tests feed it the
same ticks and get the same rows.

Windows are event-time, trailing and half-open: a window of w seconds at tick time t holds the
ticks with t - w < ts <= t of the current segment. Each window is kept as a pointer into
per-segment prefix sums (log returns, their squares, spreads), so a tick costs
O(1) amortized whatever the window length. The EWMA volatilities are recurrences on two floats
per half-life. All state is plain numbers and lists of numbers.
"""

from __future__ import annotations

import math

from common.featurespec import BASE_COLUMNS, EWMA_FEATURES, TIME_COLUMNS, WINDOW_FEATURES, FeatureSpec
from features.ticks import Tick

# The layout lives on the ground floor so the config loader can hold it; re-exported for callers here.
__all__ = ["BASE_COLUMNS", "DUPLICATE", "EWMA_FEATURES", "LATE", "TIME_COLUMNS", "WINDOW_FEATURES", "FeatureSpec",
           "ProductState", "update"]

NAN = float("nan")
DUPLICATE = "duplicate"
LATE = "late"
LN2 = math.log(2.0)

# Floors before taking logs. 1e-7 (0.001 bp a tick) is far below any product's quietest minute with
# moving quotes and keeps a window without a single mid move finite; 1e-4 bp is a tenth of the
# tightest spread on the tape (1 cent on BTC-USD at 90,000 is 1.1e-3 bp), for a locked book (bid = ask).
LOG_FLOOR = 1e-7
SPREAD_FLOOR_BPS = 1e-4


class ProductState:
    """Everything one product's features need from the past; small, picklable."""

    __slots__ = (
        "spec",
        "_windows_ns",
        "_gap_ns",
        "_decay_per_ns",
        "last",
        "last_mid",
        "segment_ns",
        "times",
        "cum_ret",
        "cum_sq",
        "cum_spread",
        "starts",
        "ew_sq",
        "ew_n",
        "segments",
    )

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._windows_ns = tuple(round(w * 1e9) for w in spec.windows_s)
        self._gap_ns = round(spec.segment_gap_s * 1e9)
        self._decay_per_ns = tuple(LN2 / (h * 1e9) for h in spec.ewma_halflives_s)
        self.last: Tick | None = None
        self.last_mid = NAN
        self.segment_ns = 0
        self.times: list[int] = []  # tick times of the segment's retained tail
        self.cum_ret: list[float] = []  # prefix sums of log returns (first tick of segment: 0)
        self.cum_sq: list[float] = []  # prefix sums of squared log returns
        self.cum_spread: list[float] = []  # prefix sums of spread_bps, this tick included
        self.starts: list[int] = []  # per window: index of its oldest tick
        self.ew_sq: list[float] = []  # per half-life: decayed sum of squared returns
        self.ew_n: list[float] = []  # per half-life: decayed count of returns
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
    spread = (ask - bid) / mid * 1e4
    times, cum_ret, cum_sq, starts = state.times, state.cum_ret, state.cum_sq, state.starts
    cum_spread, ew_sq, ew_n = state.cum_spread, state.ew_sq, state.ew_n
    if last is None or new_segment or t - last[1] > state._gap_ns:
        state.segment_ns = t
        state.segments += 1
        times.clear()
        cum_ret.clear()
        cum_sq.clear()
        cum_spread.clear()
        starts[:] = [0] * len(state._windows_ns)
        ew_sq[:] = [0.0] * len(state._decay_per_ns)
        ew_n[:] = [0.0] * len(state._decay_per_ns)
        r = NAN
        s_i = q_i = 0.0
        a_i = spread
    else:
        r = math.log(mid / state.last_mid)
        s_i = cum_ret[-1] + r
        q_i = cum_sq[-1] + r * r
        a_i = cum_spread[-1] + spread
        dt = t - last[1]
        for k, rate in enumerate(state._decay_per_ns):
            decay = math.exp(-rate * dt)
            ew_sq[k] = ew_sq[k] * decay + r * r
            ew_n[k] = ew_n[k] * decay + 1.0
    times.append(t)
    cum_ret.append(s_i)
    cum_sq.append(q_i)
    cum_spread.append(a_i)
    state.last = tick
    state.last_mid = mid
    segment_ns = state.segment_ns

    if bid_qty is not None and ask_qty is not None and bid_qty + ask_qty > 0.0:
        imbalance = (bid_qty - ask_qty) / (bid_qty + ask_qty)
    else:
        imbalance = NAN
    row = [product, t, segment_ns, price, bid, ask, mid, r, spread, imbalance, (t - segment_ns) * 1e-9]
    i = len(times) - 1
    log_spread = math.log(max(spread, SPREAD_FLOOR_BPS))
    for k, w_ns in enumerate(state._windows_ns):
        p = starts[k]
        cutoff = t - w_ns
        while times[p] <= cutoff:
            p += 1
        starts[k] = p
        # Returns in the window are those of ticks p..i, except the segment's first tick.
        b = p - 1 if p else 0
        n = i - b
        ticks = i - p + 1
        rate = ticks * 1e9 / w_ns
        spread_mean = (a_i - (cum_spread[p - 1] if p else 0.0)) / ticks
        spread_rel = log_spread - math.log(max(spread_mean, SPREAD_FLOOR_BPS))
        if n >= 2:
            s = s_i - cum_ret[b]
            var = (q_i - cum_sq[b]) / n - (s / n) ** 2
            rv = math.sqrt(var) if var > 0.0 else 0.0
            row += (rv, math.log(max(rv, LOG_FLOOR)), s, rate, spread_mean, spread_rel)
        elif n == 1:
            row += (NAN, NAN, s_i - cum_ret[b], rate, spread_mean, spread_rel)
        else:
            row += (NAN, NAN, NAN, rate, spread_mean, spread_rel)
    for k in range(len(ew_n)):
        if ew_n[k] > 0.0:
            ewma = math.sqrt(ew_sq[k] / ew_n[k])
            row += (ewma, math.log(max(ewma, LOG_FLOOR)))
        else:
            row += (NAN, NAN)
    if i > 8192 and min(starts) * 2 > i:
        _drop_head(state)
    return row


def _drop_head(state: ProductState) -> None:
    """Forget ticks no window can reach, rebasing the prefix sums to keep their precision."""
    cut = min(state.starts) - 1
    if cut <= 0:
        return
    del state.times[:cut]
    for name in ("cum_ret", "cum_sq", "cum_spread"):
        values = getattr(state, name)
        base = values[cut]
        values[:] = [v - base for v in values[cut:]]
    state.starts[:] = [p - cut for p in state.starts]
