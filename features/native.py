"""The feature fold of ``features.online``, compiled with numba, over columns of ticks.

``features.online.update`` is the specification; ``fold`` here computes the same rows bit for
bit (tests/unit/test_native_fold.py proves it on random streams) for a whole column of one
product's ticks per call, so live micro-batches and replay's large batches cost a few
hundred nanoseconds a tick instead of tens of microseconds.

Bit for bit means the same floating-point operations in the same order: the kernel mirrors the
Python fold line by line, calls the same libm ``log``/``exp``/``pow`` (LLVM's ``-fp-contract``
is off without fastmath, so no fused multiply-adds), rebases its prefix sums at the same ticks,
and squares the window mean through ``pow`` with a run-time exponent, because Python's
``x ** 2`` is ``pow(x, 2.0)``, which differs from ``x * x`` in the last bit for about one value
in a thousand (LLVM would turn a constant exponent into ``x * x``).

Compilation: numba compiles each kernel on its first call and caches the machine code beside
this file (``cache=True``, ``__pycache__``), so only the first run on a machine pays it
(a few seconds; ``make setup`` pays it once).
"""

from __future__ import annotations

import math

import numpy as np
from features.jit import njit

from features.online import LOG_FLOOR, SPREAD_FLOOR_BPS, FeatureSpec, ProductState
from features.ticks import Tick

NAN = math.nan
NO_SEQUENCE = np.iinfo(np.int64).min  # a tick without a sequence number (None)
ACCEPTED, DUPLICATE, LATE = 0, 1, 2  # fold statuses
TRIM_AFTER = 8192  # as features.online: drop unreachable ticks once the segment holds more

# ints of a state
N, HAS_LAST, LAST_TS, SEGMENT_NS, SEGMENTS, LAST_SEQ = range(6)
# floats of a state (the previous accepted tick, for the duplicate rule, and its midprice)
LAST_MID, LAST_PRICE, LAST_BID, LAST_ASK, LAST_BID_QTY, LAST_ASK_QTY, LAST_VOLUME = range(7)
# rows of ``cums``: prefix sums over the segment's retained ticks
CUM_RET, CUM_SQ, CUM_SPREAD = range(3)
FIXED_FLOATS = 8  # price, best_bid, best_ask, midprice, log_return, spread_bps, book_imbalance, segment_age_s
WINDOW_VALUES = 6  # per window: rv, log_rv, ret, tick_rate, spread_mean, spread_rel
EWMA_VALUES = 2  # per half-life: ewma_rv, log_ewma_rv


def float_columns(spec: FeatureSpec) -> tuple[str, ...]:
    """The float columns of a row, in the order of ``fold``'s output rows: all but product, ts, segment."""
    return spec.columns[3:]


class NativeState:
    """One product's fold state as numpy arrays: the compiled counterpart of ``ProductState``.

    Picklable (the buffers are cut to their used length), and convertible to and from a
    ``ProductState`` holding the same values, so a checkpoint written by either fold resumes
    in the other.
    """

    __slots__ = ("product", "ints", "floats", "times", "cums", "starts", "ew")

    def __init__(self, product: str, spec: FeatureSpec, capacity: int = 64) -> None:
        self.product = product
        self.ints = np.zeros(6, dtype=np.int64)
        self.ints[LAST_SEQ] = NO_SEQUENCE
        self.floats = np.full(7, NAN)
        self.times = np.zeros(capacity, dtype=np.int64)  # tick times of the segment's retained tail
        self.cums = np.zeros((3, capacity))
        self.starts = np.zeros(len(spec.windows_s), dtype=np.int64)  # per window: index of its oldest tick
        self.ew = np.zeros((2, len(spec.ewma_halflives_s)))  # decayed sums of squared returns, and counts

    @property
    def segments(self) -> int:
        return int(self.ints[SEGMENTS])

    @property
    def last(self) -> Tick | None:
        """The previous accepted tick (what the duplicate and late rules compare with)."""
        if not self.ints[HAS_LAST]:
            return None
        f = self.floats
        return Tick(self.product, int(self.ints[LAST_TS]), float(f[LAST_PRICE]), float(f[LAST_BID]),
                    float(f[LAST_ASK]), _none_if_nan(f[LAST_BID_QTY]), _none_if_nan(f[LAST_ASK_QTY]),
                    _none_if_nan(f[LAST_VOLUME]),
                    None if self.ints[LAST_SEQ] == NO_SEQUENCE else int(self.ints[LAST_SEQ]))

    def reserve(self, more: int) -> None:
        """Room for ``more`` appended ticks (trimming only ever shrinks the used part)."""
        used = int(self.ints[N])
        if used + more > self.times.shape[0]:
            capacity = max(2 * self.times.shape[0], used + more)
            times = np.zeros(capacity, dtype=np.int64)
            cums = np.zeros((3, capacity))
            times[:used] = self.times[:used]
            cums[:, :used] = self.cums[:, :used]
            self.times, self.cums = times, cums

    def __getstate__(self) -> dict:
        used = int(self.ints[N])
        return {"product": self.product, "ints": self.ints, "floats": self.floats, "times": self.times[:used].copy(),
                "cums": self.cums[:, :used].copy(), "starts": self.starts, "ew": self.ew}

    def __setstate__(self, data: dict) -> None:
        for name, value in data.items():
            setattr(self, name, value)

    # -- the specification's state, both ways ---------------------------------------------------

    @classmethod
    def from_python(cls, product: str, state: ProductState) -> NativeState:
        """The same state, from ``features.online``'s ``ProductState``."""
        native = cls(product, state.spec, capacity=max(len(state.times), 1))
        used = len(state.times)
        native.ints[N] = used
        native.ints[SEGMENT_NS] = state.segment_ns
        native.ints[SEGMENTS] = state.segments
        native.times[:used] = state.times
        native.cums[CUM_RET, :used] = state.cum_ret
        native.cums[CUM_SQ, :used] = state.cum_sq
        native.cums[CUM_SPREAD, :used] = state.cum_spread
        if state.starts:
            native.starts[:] = state.starts
        if state.ew_sq:
            native.ew[0] = state.ew_sq
            native.ew[1] = state.ew_n
        native.floats[LAST_MID] = state.last_mid
        if state.last is not None:
            _, ts, price, bid, ask, bid_qty, ask_qty, volume, sequence = state.last
            native.ints[HAS_LAST] = 1
            native.ints[LAST_TS] = ts
            native.ints[LAST_SEQ] = NO_SEQUENCE if sequence is None else sequence
            native.floats[LAST_PRICE:] = (price, bid, ask, _nan_if_none(bid_qty), _nan_if_none(ask_qty),
                                          _nan_if_none(volume))
        return native

    def to_python(self, spec: FeatureSpec) -> ProductState:
        """The same state as a ``ProductState`` for ``features.online.update``."""
        state = ProductState(spec)
        used = int(self.ints[N])
        state.last = self.last
        state.last_mid = float(self.floats[LAST_MID])
        state.segment_ns = int(self.ints[SEGMENT_NS])
        state.segments = int(self.ints[SEGMENTS])
        state.times = self.times[:used].tolist()
        state.cum_ret = self.cums[CUM_RET, :used].tolist()
        state.cum_sq = self.cums[CUM_SQ, :used].tolist()
        state.cum_spread = self.cums[CUM_SPREAD, :used].tolist()
        if self.ints[HAS_LAST]:
            state.starts = self.starts.tolist()
            state.ew_sq = self.ew[0].tolist()
            state.ew_n = self.ew[1].tolist()
        return state


def _none_if_nan(value: float) -> float | None:
    return None if value != value else float(value)


def _nan_if_none(value: float | None) -> float:
    return NAN if value is None else value


class FoldConstants:
    """A spec's constants in the form the kernel takes (computed as ``ProductState`` computes them)."""

    def __init__(self, spec: FeatureSpec) -> None:
        probe = ProductState(spec)
        self.windows_ns = np.array(probe._windows_ns, dtype=np.int64)
        self.decay_per_ns = np.array(probe._decay_per_ns, dtype=np.float64)
        self.gap_ns = int(probe._gap_ns)
        self.n_floats = len(float_columns(spec))


def fold(state: NativeState, constants: FoldConstants, order: np.ndarray, ts: np.ndarray, price: np.ndarray,
         bid: np.ndarray, ask: np.ndarray, bid_qty: np.ndarray, ask_qty: np.ndarray, volume: np.ndarray,
         sequence: np.ndarray, forced: np.ndarray, status: np.ndarray, segment: np.ndarray, out: np.ndarray) -> None:
    """Fold the ticks ``order`` (positions into the tick columns, one product, stream order) into ``state``.

    Writes, at each position, ``status`` (ACCEPTED, DUPLICATE or LATE) and for accepted ticks
    ``segment`` and the float columns ``out[position]``. Absent quantities are NaN, an absent
    sequence number is ``NO_SEQUENCE``.
    """
    state.reserve(len(order))
    _fold(state.ints, state.floats, state.times, state.cums, state.starts, state.ew,
          constants.windows_ns, constants.decay_per_ns, constants.gap_ns, 2.0,
          order, ts, price, bid, ask, bid_qty, ask_qty, volume, sequence, forced, status, segment, out)


@njit()
def _same(a: float, b: float) -> bool:
    """Equality of optional numbers, NaN standing for None (None == None)."""
    return a == b or (a != a and b != b)


@njit()
def _pymax(a: float, b: float) -> float:
    """Python's ``max(a, b)``: ``a`` unless ``b`` is greater."""
    return b if b > a else a


@njit()
def _fold(ints, floats, times, cums, starts, ew, windows_ns, decay_per_ns, gap_ns, square_exponent,
          order, ts, price, bid, ask, bid_qty, ask_qty, volume, sequence, forced, status, segment, out):
    # ``square_exponent`` is 2.0, passed at run time so that ``x ** square_exponent`` stays a libm
    # pow call, as in Python (see the module docstring).
    n_windows = windows_ns.shape[0]
    n_ewma = decay_per_ns.shape[0]
    cum_ret = cums[CUM_RET]
    cum_sq = cums[CUM_SQ]
    cum_spread = cums[CUM_SPREAD]
    ew_sq = ew[0]
    ew_n = ew[1]
    for j in order:
        t = ts[j]
        if ints[HAS_LAST]:
            if (t == ints[LAST_TS] and price[j] == floats[LAST_PRICE] and bid[j] == floats[LAST_BID]
                    and ask[j] == floats[LAST_ASK] and _same(bid_qty[j], floats[LAST_BID_QTY])
                    and _same(ask_qty[j], floats[LAST_ASK_QTY]) and _same(volume[j], floats[LAST_VOLUME])
                    and sequence[j] == ints[LAST_SEQ]):
                status[j] = DUPLICATE
                continue
            if t < ints[LAST_TS]:
                status[j] = LATE
                continue
        status[j] = ACCEPTED
        b_j = bid[j]
        a_j = ask[j]
        mid = (b_j + a_j) * 0.5
        spread = (a_j - b_j) / mid * 1e4
        n = ints[N]
        if not ints[HAS_LAST] or forced[j] or t - ints[LAST_TS] > gap_ns:
            ints[SEGMENT_NS] = t
            ints[SEGMENTS] += 1
            n = 0
            for k in range(n_windows):
                starts[k] = 0
            for k in range(n_ewma):
                ew_sq[k] = 0.0
                ew_n[k] = 0.0
            r = math.nan
            s_i = 0.0
            q_i = 0.0
            a_i = spread
        else:
            r = math.log(mid / floats[LAST_MID])
            s_i = cum_ret[n - 1] + r
            q_i = cum_sq[n - 1] + r * r
            a_i = cum_spread[n - 1] + spread
            dt = t - ints[LAST_TS]
            for k in range(n_ewma):
                decay = math.exp(-decay_per_ns[k] * dt)
                ew_sq[k] = ew_sq[k] * decay + r * r
                ew_n[k] = ew_n[k] * decay + 1.0
        times[n] = t
        cum_ret[n] = s_i
        cum_sq[n] = q_i
        cum_spread[n] = a_i
        n += 1
        ints[N] = n
        ints[HAS_LAST] = 1
        ints[LAST_TS] = t
        ints[LAST_SEQ] = sequence[j]
        floats[LAST_MID] = mid
        floats[LAST_PRICE] = price[j]
        floats[LAST_BID] = b_j
        floats[LAST_ASK] = a_j
        floats[LAST_BID_QTY] = bid_qty[j]
        floats[LAST_ASK_QTY] = ask_qty[j]
        floats[LAST_VOLUME] = volume[j]
        segment_ns = ints[SEGMENT_NS]
        segment[j] = segment_ns

        row = out[j]
        bq = bid_qty[j]
        aq = ask_qty[j]
        if bq == bq and aq == aq and bq + aq > 0.0:
            imbalance = (bq - aq) / (bq + aq)
        else:
            imbalance = math.nan
        row[0] = price[j]
        row[1] = b_j
        row[2] = a_j
        row[3] = mid
        row[4] = r
        row[5] = spread
        row[6] = imbalance
        row[7] = (t - segment_ns) * 1e-9
        i = n - 1
        log_spread = math.log(_pymax(spread, SPREAD_FLOOR_BPS))
        c = FIXED_FLOATS
        for k in range(n_windows):
            w_ns = windows_ns[k]
            p = starts[k]
            cutoff = t - w_ns
            while times[p] <= cutoff:
                p += 1
            starts[k] = p
            b = p - 1 if p else 0
            m = i - b
            count = i - p + 1
            rate = count * 1e9 / w_ns
            spread_mean = (a_i - (cum_spread[p - 1] if p else 0.0)) / count
            spread_rel = log_spread - math.log(_pymax(spread_mean, SPREAD_FLOOR_BPS))
            if m >= 2:
                s = s_i - cum_ret[b]
                var = (q_i - cum_sq[b]) / m - (s / m) ** square_exponent
                rv = math.sqrt(var) if var > 0.0 else 0.0
                row[c] = rv
                row[c + 1] = math.log(_pymax(rv, LOG_FLOOR))
                row[c + 2] = s
            elif m == 1:
                row[c] = math.nan
                row[c + 1] = math.nan
                row[c + 2] = s_i - cum_ret[b]
            else:
                row[c] = math.nan
                row[c + 1] = math.nan
                row[c + 2] = math.nan
            row[c + 3] = rate
            row[c + 4] = spread_mean
            row[c + 5] = spread_rel
            c += WINDOW_VALUES
        for k in range(n_ewma):
            if ew_n[k] > 0.0:
                ewma = math.sqrt(ew_sq[k] / ew_n[k])
                row[c] = ewma
                row[c + 1] = math.log(_pymax(ewma, LOG_FLOOR))
            else:
                row[c] = math.nan
                row[c + 1] = math.nan
            c += EWMA_VALUES
        if i > TRIM_AFTER:
            lowest = starts[0]
            for k in range(1, n_windows):
                lowest = min(lowest, starts[k])
            if lowest * 2 > i:
                _drop_head(ints, times, cum_ret, cum_sq, cum_spread, starts, lowest - 1)


@njit()
def _drop_head(ints, times, cum_ret, cum_sq, cum_spread, starts, cut):
    """As ``features.online._drop_head``: forget the first ``cut`` ticks and rebase the prefix sums."""
    if cut <= 0:
        return
    n = ints[N]
    base_ret = cum_ret[cut]
    base_sq = cum_sq[cut]
    base_spread = cum_spread[cut]
    for k in range(cut, n):
        times[k - cut] = times[k]
        cum_ret[k - cut] = cum_ret[k] - base_ret
        cum_sq[k - cut] = cum_sq[k] - base_sq
        cum_spread[k - cut] = cum_spread[k] - base_spread
    ints[N] = n - cut
    for k in range(starts.shape[0]):
        starts[k] -= cut
