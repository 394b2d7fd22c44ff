"""Property tests: the incremental features (and the label) equal a brute-force recomputation.

The reference below is written from DESIGN.md alone and recomputes every value from the whole
accepted history with numpy masks, the slow obvious way:

* acceptance: duplicate = equal in every field to the previous accepted tick of its product;
  late = earlier than it; a segment starts at a product's first tick, at a forced start, or
  when the gap to its previous accepted tick exceeds ``segment_gap_s``;
* window w at tick time t: the ticks of the current segment with t - w < ts <= t, up to and
  including this tick (a later tick at the same time is not seen yet); ``rv`` = population
  std of their log returns (NaN with < 2), ``log_rv`` = ln(max(rv, floor)), ``ret`` = their
  sum (NaN with none), ``tick_rate`` = number of those ticks / w, ``spread_mean`` = mean
  spread (bps) of those ticks, ``spread_rel`` = ln(spread / spread_mean), both floored; the
  segment's first tick has no return;
* EWMA with half-life h at tick k: sqrt(sum_j 2^(-(t_k - t_j)/h) r_j^2 / sum_j 2^(-(t_k - t_j)/h))
  over the returns j <= k of the segment (NaN without one), and its log, floored;
* label: std (ddof=0) of the returns of the same product and segment with t < ts_j <= t + h,
  NaN unless >= 2 of them and the segment's last tick is at or after t + h.

Tolerance. The implementation keeps running (prefix) sums of returns and squared returns and
takes differences, so its error is that of recursive summation: |fl(sum) - sum| <= gamma_N *
sum|x| with gamma_N ~ N*u (u = 2**-53; Higham, Accuracy and Stability, 4.2). Two prefix sums,
one log per return (math.log and np.log may differ by an ulp) and the rebasing of the sums
when old ticks are dropped (at most one rounding per element per rebase, a rebase every few
thousand ticks) stay below (3N + 3) * u * sum|x| over the N ticks of the segment so far. The
variance E[r^2] - E[r]^2 then carries that error divided by the window count, plus a few
roundings of its own. The bound is computed per row; it is tight enough that a wrong window
edge or a missed tick (errors of order one return squared) can never pass.
"""

from __future__ import annotations

import math
import pickle
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from features.labels import add_future_sigma, sigma_column
from features.online import DUPLICATE, LATE, LOG_FLOOR, SPREAD_FLOOR_BPS, FeatureSpec, ProductState, update
from features.ticks import Tick

S = 1_000_000_000
U = 2.0**-53
T0 = 1_764_983_567_000_000_000
TIGHT = FeatureSpec(windows_s=(0.5, 2.0), ewma_halflives_s=(0.3, 4.0), segment_gap_s=5)
SPECS = [
    TIGHT,
    FeatureSpec(windows_s=(0.25, 1.0, 7.5), ewma_halflives_s=(1.0,), segment_gap_s=3),
    FeatureSpec(windows_s=(30.0, 60.0, 300.0, 900.0), ewma_halflives_s=(60.0, 600.0), segment_gap_s=30),
]
# Reproducible (derandomized, no example database) and bounded in time: shrinking is off,
# because shrinking these streams takes minutes; a failure names the row, tick and window.
FAST = dict(deadline=None, derandomize=True, database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Event(NamedTuple):
    tick: Tick
    forced: bool  # a segment start the recorder saw (raw record with a gap)


# --- the independent reference --------------------------------------------------------------


class History(NamedTuple):
    """One product's accepted ticks as arrays, with segment ids and per-tick returns."""

    ticks: list[Tick]
    ts: np.ndarray
    mid: np.ndarray
    seg: np.ndarray
    seg_first: list[int]  # index of the first tick of each tick's segment
    ret: np.ndarray  # log return vs the previous tick of the segment; NaN at a segment start
    spread: np.ndarray  # (ask - bid) / mid in basis points
    abs_so_far: list[float]  # sum of |return| over the segment up to each tick (for the tolerance only)
    sq_so_far: list[float]  # sum of return**2 likewise
    spread_so_far: list[float]  # sum of spreads over the segment up to each tick, likewise


def reference_accept(events: list[Event], spec: FeatureSpec) -> tuple[list[Any], dict[str, History]]:
    """Outcome per event: DUPLICATE, LATE, or (product, index into its accepted history)."""
    gap_ns = round(spec.segment_gap_s * S)
    accepted: dict[str, list[tuple[Tick, int]]] = {}
    outcomes: list[Any] = []
    for tick, forced in events:
        hist = accepted.setdefault(tick.product_id, [])
        if hist and tick == hist[-1][0]:
            outcomes.append(DUPLICATE)
            continue
        if hist and tick.ts_ns < hist[-1][0].ts_ns:
            outcomes.append(LATE)
            continue
        if not hist:
            seg = 0
        elif forced or tick.ts_ns - hist[-1][0].ts_ns > gap_ns:
            seg = hist[-1][1] + 1
        else:
            seg = hist[-1][1]
        hist.append((tick, seg))
        outcomes.append((tick.product_id, len(hist) - 1))
    return outcomes, {product: _history(hist) for product, hist in accepted.items()}


def _history(hist: list[tuple[Tick, int]]) -> History:
    ticks = [t for t, _ in hist]
    ts = np.array([t.ts_ns for t in ticks], dtype=np.int64)
    mid = np.array([(t.best_bid + t.best_ask) / 2 for t in ticks])
    seg = np.array([s for _, s in hist])
    ret = np.full(len(ticks), np.nan)
    same = seg[1:] == seg[:-1]
    ret[1:][same] = np.log(mid[1:][same] / mid[:-1][same])
    spread = np.array([(t.best_ask - t.best_bid) / ((t.best_bid + t.best_ask) / 2) * 1e4 for t in ticks])
    seg_first, abs_so_far, sq_so_far, spread_so_far = [], [], [], []
    for i in range(len(ticks)):
        if i == 0 or seg[i] != seg[i - 1]:
            first, a, q, p = i, 0.0, 0.0, 0.0
        else:
            a, q = a + abs(ret[i]), q + ret[i] ** 2
        p += spread[i]
        seg_first.append(first)
        abs_so_far.append(a)
        sq_so_far.append(q)
        spread_so_far.append(p)
    return History(ticks, ts, mid, seg, seg_first, ret, spread, abs_so_far, sq_so_far, spread_so_far)


def summation_error(n_ticks: int, abs_sum: float) -> float:
    """Bound on the error of a difference of two running sums over ``n_ticks`` terms (see module doc)."""
    return (3 * n_ticks + 3) * U * abs_sum


def variance_tolerance(r: list[float], err_s: float, err_q: float) -> float:
    """Error bound on E[r^2] - E[r]^2 from running sums, plus the reference's own two-pass rounding."""
    n = len(r)
    s_w = abs(sum(r))
    q_w = sum(x * x for x in r)
    return (err_q / n + 2 * s_w / n * err_s / n + (err_s / n) ** 2
            + (n + 8) * U * (q_w / n + (s_w / n) ** 2))


def population_variance(r: list[float]) -> float:
    """The textbook two-pass formula: mean, then mean squared deviation."""
    mean = sum(r) / len(r)
    return sum((x - mean) ** 2 for x in r) / len(r)


def check_row(row: list, h: History, k: int, spec: FeatureSpec) -> None:
    """Compare one implementation row with the brute force for tick k of the product's history."""
    columns = spec.columns
    assert len(row) == len(columns)
    cols = dict(zip(columns, row))
    tick = h.ticks[k]
    t = tick.ts_ns
    first = h.seg_first[k]
    where = f"tick {k} of {tick.product_id} at {t}"
    assert cols["product_id"] == tick.product_id, where
    assert cols["ts"] == t, where
    assert cols["segment"] == h.ts[first], where
    assert (cols["price"], cols["best_bid"], cols["best_ask"]) == (tick.price, tick.best_bid, tick.best_ask), where
    assert cols["midprice"] == h.mid[k], where
    if k == first:
        assert math.isnan(cols["log_return"]), where
    else:
        assert math.isclose(cols["log_return"], h.ret[k], rel_tol=1e-12, abs_tol=0.0), where
    assert math.isclose(cols["spread_bps"], (tick.best_ask - tick.best_bid) / h.mid[k] * 1e4, rel_tol=1e-12), where
    bq, aq = tick.best_bid_qty, tick.best_ask_qty
    if bq is None or aq is None or bq + aq == 0:
        assert math.isnan(cols["book_imbalance"]), where
    else:
        assert math.isclose(cols["book_imbalance"], (bq - aq) / (bq + aq), rel_tol=1e-12, abs_tol=1e-15), where
    assert math.isclose(cols["segment_age_s"], (t - h.ts[first]) / 1e9, rel_tol=1e-12), where

    seg_ts = h.ts[first: k + 1]  # the segment so far, this tick included, nothing after it
    seg_ret = h.ret[first: k + 1]
    err_s = summation_error(k + 1 - first, h.abs_so_far[k])
    err_q = summation_error(k + 1 - first, h.sq_so_far[k])
    for w in spec.windows_s:
        w_ns = round(w * S)
        inside = (seg_ts > t - w_ns) & (seg_ts <= t)
        count = int(inside.sum())
        r = [x for x in seg_ret[inside].tolist() if not math.isnan(x)]  # the segment's first tick has none
        n = len(r)
        rv, ret, rate = cols[f"rv_{w:g}s"], cols[f"ret_{w:g}s"], cols[f"tick_rate_{w:g}s"]
        label = f"{where}, window {w:g}s holding {count} ticks and {n} returns"
        assert math.isclose(rate, count / w, rel_tol=1e-12), label
        if n == 0:
            assert math.isnan(ret), label
        else:
            assert abs(ret - sum(r)) <= err_s + (n + 4) * U * sum(abs(x) for x in r), f"{label}: ret {ret!r}"
        log_rv = cols[f"log_rv_{w:g}s"]
        if n < 2:
            assert math.isnan(rv) and math.isnan(log_rv), label
        else:
            var = population_variance(r)
            tol = variance_tolerance(r, err_s, err_q)
            assert abs(rv * rv - var) <= tol, f"{label}: rv {rv!r} vs {math.sqrt(var)!r}"
            # d ln(rv) = d(rv^2) / (2 rv^2); below the floor the log is the floor's
            expected = math.log(max(math.sqrt(var), LOG_FLOOR))
            assert abs(log_rv - expected) <= tol / (2 * max(var, LOG_FLOOR ** 2)) + 4 * U * abs(expected), \
                f"{label}: log_rv {log_rv!r} vs {expected!r}"
        spreads = h.spread[first: k + 1][inside]
        mean = float(spreads.mean())
        err_p = summation_error(k + 1 - first, h.spread_so_far[k]) / count + (count + 4) * U * mean
        assert abs(cols[f"spread_mean_{w:g}s"] - mean) <= err_p, f"{label}: spread_mean"
        expected_rel = math.log(max(h.spread[k], SPREAD_FLOOR_BPS)) - math.log(max(mean, SPREAD_FLOOR_BPS))
        assert abs(cols[f"spread_rel_{w:g}s"] - expected_rel) <= err_p / max(mean, SPREAD_FLOOR_BPS) + 1e-12, \
            f"{label}: spread_rel {cols[f'spread_rel_{w:g}s']!r} vs {expected_rel!r}"
    for half_life in spec.ewma_halflives_s:
        has_return = ~np.isnan(seg_ret)
        label = f"{where}, EWMA half-life {half_life:g}s over {int(has_return.sum())} returns"
        ewma, log_ewma = cols[f"ewma_rv_{half_life:g}s"], cols[f"log_ewma_rv_{half_life:g}s"]
        if not has_return.any():
            assert math.isnan(ewma) and math.isnan(log_ewma), label
            continue
        weights = np.exp2(-(t - seg_ts[has_return]) / (half_life * S))
        r2 = seg_ret[has_return] ** 2
        if weights.sum() == 0.0:  # every weight underflowed: the recurrence keeps what it can, no check
            continue
        expected = math.sqrt(float((weights * r2).sum() / weights.sum()))
        # Each step multiplies by one rounded exp and adds: a relative error of a few u per return.
        rel = (8 * int(has_return.sum()) + 8) * U
        assert abs(ewma - expected) <= rel * expected + 1e-300, f"{label}: ewma {ewma!r} vs {expected!r}"
        expected_log = math.log(max(expected, LOG_FLOOR))
        assert abs(log_ewma - expected_log) <= rel + 4 * U * abs(expected_log), f"{label}: log_ewma"


def run_implementation(events: list[Event], spec: FeatureSpec, pickle_at: int | None = None) -> list[Any]:
    """Feed the events to ``update``, one state per product; optionally pickle the states mid-way."""
    states: dict[str, ProductState] = {}
    results = []
    for i, (tick, forced) in enumerate(events):
        if i == pickle_at:
            states = pickle.loads(pickle.dumps(states))
        state = states.get(tick.product_id)
        if state is None:
            state = states[tick.product_id] = ProductState(spec)
        results.append(update(state, tick, forced))
    return results


def check_stream(events: list[Event], spec: FeatureSpec, pickle_at: int | None = None) -> list[list]:
    """The whole comparison; returns the implementation's accepted rows."""
    outcomes, histories = reference_accept(events, spec)
    results = run_implementation(events, spec, pickle_at)
    rows = []
    for i, (expected, got) in enumerate(zip(outcomes, results)):
        if expected is DUPLICATE or expected is LATE:
            assert got == expected, f"event {i}: expected {expected}, got a row or {got!r}"
            continue
        assert isinstance(got, (list, tuple)), f"event {i}: expected a row, got {got!r}"
        product, k = expected
        check_row(got, histories[product], k, spec)
        rows.append(got)
    return rows


# --- stream generators -----------------------------------------------------------------------


STEP_KINDS = ["burst"] * 3 + ["near"] * 2 + ["edge"] * 3 + ["any"] * 8 + ["gap_edge", "gap", "late"]
MOVES = [-3, -2, -1, 0, 1, 2, 3] * 3 + [-2500, 1700]  # price moves in cents, rare jumps
QUANTITIES = [None, None, 0.0, 0.25, 1.0, 1.5, 4.0]  # None: not in the record
SPAN = 1 << 20


@st.composite
def streams(draw, min_size: int = 1, max_size: int = 200) -> tuple[FeatureSpec, list[Event]]:
    """Random tick streams: bursts, window and segment edges, gaps, late ticks, duplicates, forced starts."""
    spec = draw(st.sampled_from(SPECS))
    gap_ns = round(spec.segment_gap_s * S)
    edges = sorted({e for w in spec.windows_s for e in (round(w * S) - 1, round(w * S), round(w * S) + 1,
                                                        round(w * S) // 2)})
    within = min(gap_ns, round(max(spec.windows_s) * S))
    event = st.tuples(
        st.sampled_from(["A", "A", "A", "B"]),
        st.sampled_from(STEP_KINDS),
        st.integers(0, SPAN - 1),  # where in the step kind's range
        st.sampled_from(["new"] * 8 + ["duplicate", "forced"]),
        st.sampled_from(MOVES),
        st.integers(0, 4),  # spread in cents (0: bid == ask)
        st.sampled_from(QUANTITIES),
        st.sampled_from(QUANTITIES),
    )
    raw = draw(st.lists(event, min_size=min_size, max_size=max_size))
    clock: dict[str, int] = {}
    cents: dict[str, int] = {}
    last: dict[str, Tick] = {}
    events: list[Event] = []
    for product, step, u, kind, move, spread, bid_qty, ask_qty in raw:
        if kind == "duplicate" and product in last:
            events.append(Event(last[product], False))
            continue
        dt = {
            "burst": 0,  # the same time
            "near": 1 + u % 1_000,  # nearly the same time
            "edge": edges[u % len(edges)],  # on and next to the window edges
            "any": u * within // SPAN,  # anywhere within the segment
            "gap_edge": gap_ns - 1 + u % 3,  # on and next to the segment edge
            "gap": gap_ns + 1 + u * 19 * gap_ns // SPAN,  # a new segment
            "late": -1 - u * gap_ns // SPAN,  # before the previous tick
        }[step]
        clock[product] = clock.get(product, T0) + dt
        cents[product] = max(cents.get(product, 1_000_000) + move, 100)
        ask = cents[product] / 100
        bid = (cents[product] - spread) / 100
        tick = Tick(product, clock[product], bid, bid, ask, bid_qty, ask_qty, None, None)
        last[product] = tick
        events.append(Event(tick, kind == "forced"))
    return spec, events


def long_stream(rng: np.random.Generator, n: int, gap_rate: float, spec: FeatureSpec = TIGHT) -> list[Event]:
    """Thousands of ticks, mostly one product, with bursts, late ticks, duplicates, and gaps and forced
    segment starts at ``gap_rate`` and a tenth of it (none at 0: one long segment per product)."""
    gap_ns = round(spec.segment_gap_s * S)
    # burst, nearly the same time, ordinary step, gap, duplicate, late, forced segment start
    kinds = rng.choice(7, size=n, p=[0.25, 0.15, 0.55 - 1.1 * gap_rate, gap_rate, 0.03, 0.02, 0.1 * gap_rate])
    moves = rng.integers(-3, 4, size=n)
    spreads = rng.integers(0, 5, size=n)
    qty = rng.random((n, 2)) * 3
    has_qty = rng.random(n) < 0.8
    products = np.where(rng.random(n) < 0.95, "A", "B")
    clock: dict[str, int] = {}
    cents: dict[str, int] = {}
    last: dict[str, Tick] = {}
    events: list[Event] = []
    for i in range(n):
        product = str(products[i])
        kind = kinds[i]
        if kind == 4 and product in last:  # duplicate
            events.append(Event(last[product], False))
            continue
        if kind == 0:
            dt = 0
        elif kind == 1:
            dt = int(rng.integers(1, 1_000))
        elif kind == 2:
            dt = int(rng.integers(0, 300_000_000))
        elif kind == 3:
            dt = gap_ns + int(rng.integers(1, 3 * gap_ns))
        elif kind == 5:  # one tick out of order; the clock stays
            dt = -int(rng.integers(1, 2 * S))
        else:
            dt = int(rng.integers(0, 50_000_000))
        now = clock.get(product, T0) + dt
        if kind != 5:
            clock[product] = now
        cents[product] = max(cents.get(product, 1_000_000) + int(moves[i]), 100)
        ask = cents[product] / 100
        bid = (cents[product] - int(spreads[i])) / 100
        q = (float(qty[i, 0]), float(qty[i, 1])) if has_qty[i] else (None, None)
        tick = Tick(product, now, bid, bid, ask, q[0], q[1], None, None)
        last[product] = tick
        events.append(Event(tick, bool(kind == 6)))
    return events


# --- the properties --------------------------------------------------------------------------


@settings(max_examples=100, **FAST)
@given(streams(min_size=40))
def test_incremental_features_equal_brute_force(case):
    spec, events = case
    check_stream(events, spec)


@settings(max_examples=25, **FAST)
@given(streams(min_size=40), st.floats(0, 1))
def test_pickled_state_resumes_exactly(case, where):
    spec, events = case
    pickle_at = int(where * len(events))
    check_stream(events, spec, pickle_at=pickle_at)
    plain = run_implementation(events, spec)
    resumed = run_implementation(events, spec, pickle_at=pickle_at)
    assert len(plain) == len(resumed)
    for a, b in zip(plain, resumed):  # bit for bit, NaN where NaN
        assert type(a) is type(b)
        if isinstance(a, (list, tuple)):
            assert len(a) == len(b)
            assert all(x == y or (x != x and y != y) for x, y in zip(a, b)), (a, b)
        else:
            assert a == b


@settings(max_examples=4, **FAST)
@given(st.integers(0, 2**32 - 1), st.integers(10_000, 12_000), st.sampled_from([0.0, 1e-4, 1e-3]))
def test_long_streams_equal_brute_force(seed, n, gap_rate):
    """Long enough for segments beyond 8192 ticks, where the state trims its buffers."""
    check_stream(long_stream(np.random.default_rng(seed), n, gap_rate), TIGHT)


def test_one_segment_of_over_20000_ticks_equals_brute_force():
    rng = np.random.default_rng(20251206)
    events = long_stream(rng, 24_000, gap_rate=0.0)  # no gaps, no forced starts
    rows = check_stream(events, TIGHT)
    a_rows = [r for r in rows if r[0] == "A"]
    assert len(a_rows) > 20_000
    assert len({r[2] for r in a_rows}) == 1  # one segment: the trimming is what is exercised here


def feature_table(rows: list[list], spec: FeatureSpec) -> pd.DataFrame:
    """Rows as a table the way the replay lays them out (times as UTC timestamps), built here."""
    table = pd.DataFrame(rows, columns=list(spec.columns))
    for name in ("ts", "segment"):
        table[name] = pd.to_datetime(table[name].astype("int64"), unit="ns", utc=True)
    return table


def _burst_then_quiet() -> tuple[FeatureSpec, list[Event]]:
    """Two ticks at the same time, then two more within the horizon: the second tick of the
    burst is not in the future of the first (t < ts_j is strict)."""
    quotes = [(0, 100.0, 101.0), (0, 102.0, 103.0), (S // 2, 100.0, 101.0), (S, 104.0, 105.0), (3 * S, 100.0, 101.0)]
    return TIGHT, [Event(Tick("A", T0 + dt, bid, bid, ask), False) for dt, bid, ask in quotes]


@settings(max_examples=100, **FAST)
@given(streams(min_size=40), st.sampled_from([1.0, 4.0, 60.0]))
@example(_burst_then_quiet(), 1.0)
def test_future_sigma_equals_definition(case, horizon_s):
    spec, events = case
    outcomes, histories = reference_accept(events, spec)
    rows = [r for r in run_implementation(events, spec) if isinstance(r, (list, tuple))]
    if not rows:
        return
    got = add_future_sigma(feature_table(rows, spec), horizon_s)[sigma_column(horizon_s)].to_numpy()
    h_ns = round(horizon_s * S)
    accepted = [o for o in outcomes if isinstance(o, tuple)]
    assert len(accepted) == len(rows)
    for i, (product, k) in enumerate(accepted):
        h = histories[product]
        t = h.ts[k]
        same_segment = h.seg == h.seg[k]
        future = same_segment & (h.ts > t) & (h.ts <= t + h_ns)
        r = h.ret[future]
        seg_last = h.ts[same_segment].max()
        where = f"row {i} ({product} tick {k} at {t}, horizon {horizon_s:g}s, {r.size} future returns)"
        if r.size < 2 or seg_last < t + h_ns:
            assert math.isnan(got[i]), f"{where}: expected NaN, got {got[i]!r}"
            continue
        assert not math.isnan(got[i]), f"{where}: expected a value, got NaN"
        seg_ret = h.ret[same_segment]
        seg_ret = seg_ret[~np.isnan(seg_ret)]
        err_s = summation_error(seg_ret.size + 1, float(np.abs(seg_ret).sum()))
        err_q = summation_error(seg_ret.size + 1, float((seg_ret * seg_ret).sum()))
        expected = population_variance(r.tolist())
        assert abs(got[i] ** 2 - expected) <= variance_tolerance(r.tolist(), err_s, err_q), \
            f"{where}: expected {math.sqrt(expected)!r}, got {got[i]!r}"
