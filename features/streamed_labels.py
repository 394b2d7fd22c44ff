"""The label of ``features.labels`` computed as rows stream by, compiled with numba.

``add_future_sigma`` labels a finished table; replay labels each row as soon as its future is
known, so it can write rows out as it goes and hold only about a minute of them.
"""

from __future__ import annotations

import numpy as np
from features.jit import njit


class FutureSigma:
    """``add_future_sigma`` as rows stream by: the label of each row once its future is known.

    A row's label is final once a later tick of its segment lies beyond its horizon, or its
    segment has ended (the product's next segment started, or the input ended). Rows are
    numbered in stream order; ``push`` returns the labels that became final, ``finish`` the
    rest. Same running sums, same operations in the same order as ``add_future_sigma``, so the
    values are equal bit for bit (tests/unit/test_labels_stream.py).
    """

    def __init__(self, horizon_s: float = 60.0) -> None:
        self.horizon_ns = round(horizon_s * 1e9)
        self._states: dict[str, _LabelState] = {}
        self._next_row = 0

    def push(self, products: list[str], product: np.ndarray, ts: np.ndarray,
             log_return: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Take the next rows (product codes into ``products``); return (row numbers, sigma) now final."""
        n = len(ts)
        rows = np.arange(self._next_row, self._next_row + n, dtype=np.int64)
        self._next_row += n
        out_rows = np.empty(0, dtype=np.int64)
        out_sigma = np.empty(0)
        if n == 0:
            return out_rows, out_sigma
        done_rows, done_sigma = [], []
        order = np.argsort(product, kind="stable")
        cuts = np.flatnonzero(np.diff(product[order])) + 1
        for group in np.split(order, cuts):
            name = products[product[group[0]]]
            state = self._states.get(name)
            if state is None:
                state = self._states[name] = _LabelState()
            state.reserve(len(group))
            got_rows = np.empty(state.pending() + len(group), dtype=np.int64)
            got_sigma = np.empty(len(got_rows))
            k = _label(state.ints, state.tail_ts, state.tail_cum, state.tail_rows, state.sums, self.horizon_ns,
                       group, ts, log_return, rows, got_rows, got_sigma, False)
            done_rows.append(got_rows[:k])
            done_sigma.append(got_sigma[:k])
        return np.concatenate(done_rows), np.concatenate(done_sigma)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End of input: every open segment ends; the labels of all remaining rows."""
        done_rows, done_sigma = [np.empty(0, dtype=np.int64)], [np.empty(0)]
        empty = np.empty(0, dtype=np.int64)
        for state in self._states.values():
            got_rows = np.empty(state.pending(), dtype=np.int64)
            got_sigma = np.empty(len(got_rows))
            k = _label(state.ints, state.tail_ts, state.tail_cum, state.tail_rows, state.sums, self.horizon_ns,
                       empty, empty, np.empty(0), empty, got_rows, got_sigma, True)
            done_rows.append(got_rows[:k])
            done_sigma.append(got_sigma[:k])
        return np.concatenate(done_rows), np.concatenate(done_sigma)


# ints of a label state: rows held, first row without a final label, the two window pointers, open segment
_N, _PENDING, _START, _END, _OPEN = range(5)


class _LabelState:
    """One product's open segment: times and running sums of its rows from the first unlabeled one on."""

    def __init__(self) -> None:
        self.ints = np.zeros(5, dtype=np.int64)
        self.tail_ts = np.zeros(64, dtype=np.int64)
        self.tail_cum = np.zeros((2, 64))  # running sum of returns and of squared returns before each row
        self.tail_rows = np.zeros(64, dtype=np.int64)
        self.sums = np.zeros(2)  # the running sums after the last row

    def pending(self) -> int:
        return int(self.ints[_N] - self.ints[_PENDING])

    def reserve(self, more: int) -> None:
        used = int(self.ints[_N])
        if used + more > len(self.tail_ts):
            capacity = max(2 * len(self.tail_ts), used + more)
            ts, cum, rows = np.zeros(capacity, dtype=np.int64), np.zeros((2, capacity)), np.zeros(capacity, np.int64)
            ts[:used], cum[:, :used], rows[:used] = self.tail_ts[:used], self.tail_cum[:, :used], self.tail_rows[:used]
            self.tail_ts, self.tail_cum, self.tail_rows = ts, cum, rows


@njit()
def _label(ints, tail_ts, tail_cum, tail_rows, sums, horizon_ns, order, ts, log_return, rows,
           out_rows, out_sigma, finish):
    """Feed one product's rows ``order``; write the labels that become final; return how many."""
    k_out = 0
    for j in order:
        r = log_return[j]
        if r != r or not ints[_OPEN]:  # a segment starts (the only rows without a return)
            k_out = _close(ints, tail_ts, tail_cum, tail_rows, sums, horizon_ns, out_rows, out_sigma, k_out)
            ints[_OPEN] = 1
            r = 0.0
        elif r == np.inf:  # as np.nan_to_num
            r = np.finfo(np.float64).max
        elif r == -np.inf:
            r = -np.finfo(np.float64).max
        n = ints[_N]
        if ints[_PENDING] > 4096 and ints[_PENDING] * 2 > n:  # forget labeled rows no window reaches
            cut = ints[_PENDING]
            for i in range(cut, n):
                tail_ts[i - cut] = tail_ts[i]
                tail_cum[0, i - cut] = tail_cum[0, i]
                tail_cum[1, i - cut] = tail_cum[1, i]
                tail_rows[i - cut] = tail_rows[i]
            n -= cut
            ints[_PENDING] = 0
            ints[_START] -= cut
            ints[_END] -= cut
        t = ts[j]
        tail_ts[n] = t
        tail_cum[0, n] = sums[0]
        tail_cum[1, n] = sums[1]
        tail_rows[n] = rows[j]
        n += 1
        ints[_N] = n
        sums[0] += r
        sums[1] += r * r
        # rows whose horizon this tick passes have all their future now
        while tail_ts[ints[_PENDING]] + horizon_ns < t:
            out_rows[k_out] = tail_rows[ints[_PENDING]]
            out_sigma[k_out] = _sigma(ints, tail_ts, tail_cum, sums, horizon_ns, True)
            k_out += 1
            ints[_PENDING] += 1
    if finish:
        k_out = _close(ints, tail_ts, tail_cum, tail_rows, sums, horizon_ns, out_rows, out_sigma, k_out)
        ints[_OPEN] = 0
    return k_out


@njit()
def _close(ints, tail_ts, tail_cum, tail_rows, sums, horizon_ns, out_rows, out_sigma, k_out):
    """The segment ended: final labels for all its pending rows; then an empty tail."""
    n = ints[_N]
    if n:
        last = tail_ts[n - 1]
        while ints[_PENDING] < n:
            i = ints[_PENDING]
            out_rows[k_out] = tail_rows[i]
            out_sigma[k_out] = _sigma(ints, tail_ts, tail_cum, sums, horizon_ns, last >= tail_ts[i] + horizon_ns)
            k_out += 1
            ints[_PENDING] += 1
    ints[_N] = 0
    ints[_PENDING] = 0
    ints[_START] = 0
    ints[_END] = 0
    sums[0] = 0.0
    sums[1] = 0.0
    return k_out


@njit()
def _sigma(ints, tail_ts, tail_cum, sums, horizon_ns, observed):
    """``_segment_future_sigma`` for the first pending row: returns of the rows after it, up to its horizon."""
    n = ints[_N]
    i = ints[_PENDING]
    t = tail_ts[i]
    start = max(ints[_START], i + 1)
    while start < n and tail_ts[start] <= t:
        start += 1
    end = max(ints[_END], start)
    while end < n and tail_ts[end] <= t + horizon_ns:
        end += 1
    ints[_START] = start
    ints[_END] = end
    count = end - start
    if count < 2 or not observed:
        return np.nan
    total = (tail_cum[0, end] if end < n else sums[0]) - (tail_cum[0, start] if start < n else sums[0])
    total_sq = (tail_cum[1, end] if end < n else sums[1]) - (tail_cum[1, start] if start < n else sums[1])
    var = total_sq / count - (total / count) * (total / count)
    return np.sqrt(var) if var > 0.0 or var != var else 0.0  # np.clip(var, 0.0, None) keeps NaN
