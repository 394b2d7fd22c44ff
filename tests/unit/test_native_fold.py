"""The compiled fold (features.native) gives the rows of the specification (features.online) bit for bit.

Random streams of several products with bursts, window and segment edges, gaps, late ticks,
duplicates and forced segment starts (the generators of test_properties.py), fed to
``features.online.update`` one tick at a time and to the compiled fold in random batches:
every status, every segment start and every float must be identical (NaN where NaN, the
sign of zero included). States also cross between the two folds mid-stream, and through pickle.
"""

from __future__ import annotations

import math
import pickle
import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features.native import ACCEPTED, DUPLICATE as D, LATE as L, NO_SEQUENCE, FoldConstants, NativeState, fold
from features.online import DUPLICATE, LATE, FeatureSpec, ProductState, update
from test_properties import FAST, SPECS, Event, long_stream, streams


def bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def spec_results(events: list[Event], spec: FeatureSpec, states: dict | None = None) -> list:
    states = {} if states is None else states
    out = []
    for tick, forced in events:
        state = states.get(tick.product_id)
        if state is None:
            state = states[tick.product_id] = ProductState(spec)
        out.append(update(state, tick, forced))
    return out


def columns(events: list[Event]) -> dict[str, np.ndarray]:
    ticks = [e.tick for e in events]
    nan = np.nan
    return dict(
        ts=np.array([t.ts_ns for t in ticks], dtype=np.int64),
        price=np.array([t.price for t in ticks], dtype=np.float64),
        bid=np.array([t.best_bid for t in ticks], dtype=np.float64),
        ask=np.array([t.best_ask for t in ticks], dtype=np.float64),
        bid_qty=np.array([nan if t.best_bid_qty is None else t.best_bid_qty for t in ticks], dtype=np.float64),
        ask_qty=np.array([nan if t.best_ask_qty is None else t.best_ask_qty for t in ticks], dtype=np.float64),
        volume=np.array([nan if t.volume_24h is None else t.volume_24h for t in ticks], dtype=np.float64),
        sequence=np.array([NO_SEQUENCE if t.sequence_num is None else t.sequence_num for t in ticks], dtype=np.int64),
        forced=np.array([e.forced for e in events], dtype=np.bool_),
    )


def native_results(events: list[Event], spec: FeatureSpec, cuts: list[int],
                   states: dict | None = None, between=None) -> list:
    """Fold the events in batches ending at ``cuts``; ``between(states)`` may replace the states between batches."""
    states = {} if states is None else states
    constants = FoldConstants(spec)
    out: list = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(events))), len(events)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        chunk = events[lo:hi]
        cols = columns(chunk)
        n = len(chunk)
        status = np.full(n, -1, dtype=np.int8)
        segment = np.zeros(n, dtype=np.int64)
        values = np.full((n, constants.n_floats), 12345.0)
        products = [e.tick.product_id for e in chunk]
        for product in dict.fromkeys(products):
            order = np.array([i for i, p in enumerate(products) if p == product], dtype=np.int64)
            state = states.get(product)
            if state is None:
                state = states[product] = NativeState(product, spec)
            fold(state, constants, order, cols["ts"], cols["price"], cols["bid"], cols["ask"], cols["bid_qty"],
                 cols["ask_qty"], cols["volume"], cols["sequence"], cols["forced"], status, segment, values)
        for i, e in enumerate(chunk):
            if status[i] == D:
                out.append(DUPLICATE)
            elif status[i] == L:
                out.append(LATE)
            else:
                assert status[i] == ACCEPTED, status[i]
                out.append([e.tick.product_id, e.tick.ts_ns, int(segment[i]), *values[i].tolist()])
        if between is not None:
            states = between(states)
    return out


def assert_identical(expected: list, got: list) -> None:
    assert len(expected) == len(got)
    for i, (a, b) in enumerate(zip(expected, got)):
        if a is DUPLICATE or a is LATE:
            assert b is a, f"event {i}: expected {a}, got {b!r:.80}"
            continue
        assert isinstance(b, list), f"event {i}: expected a row, got {b!r}"
        assert a[:3] == b[:3], f"event {i}: {a[:3]} != {b[:3]}"
        for k, (x, y) in enumerate(zip(a[3:], b[3:]), start=3):
            assert bits(x) == bits(y) or (math.isnan(x) and math.isnan(y)), \
                f"event {i}, column {k}: {x!r} != {y!r}"


@settings(max_examples=150, **FAST)
@given(streams(min_size=40), st.lists(st.integers(0, 200), max_size=6))
def test_compiled_fold_equals_the_specification_bit_for_bit(case, cuts):
    spec, events = case
    assert_identical(spec_results(events, spec), native_results(events, spec, cuts))


@settings(max_examples=4, **FAST)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 1e-4, 1e-3]), st.sampled_from(SPECS))
def test_long_streams_equal_the_specification_bit_for_bit(seed, gap_rate, spec):
    """Segments beyond 8192 ticks, where both folds drop the ticks no window reaches and rebase their sums."""
    events = long_stream(np.random.default_rng(seed), 20_000, gap_rate, spec)
    cuts = np.random.default_rng(seed + 1).integers(0, len(events), size=5).tolist()
    assert_identical(spec_results(events, spec), native_results(events, spec, cuts))


@settings(max_examples=40, **FAST)
@given(streams(min_size=40), st.integers(1, 200), st.sampled_from(["pickle", "to_python", "from_python"]))
def test_states_cross_between_folds_and_through_pickle(case, cut, how):
    """A checkpoint of either fold resumes in the other, bit for bit."""
    spec, events = case
    cut = min(cut, len(events) - 1)
    expected = spec_results(events, spec)
    if how == "from_python":  # the specification's states, taken over by the compiled fold
        states: dict = {}
        head = spec_results(events[:cut], spec, states)
        native = {p: NativeState.from_python(p, s) for p, s in pickle.loads(pickle.dumps(states)).items()}
        got = head + native_results(events[cut:], spec, [], native)
    elif how == "to_python":  # compiled states continued by the specification
        native = {}
        head = native_results(events[:cut], spec, [], native)
        python = {p: s.to_python(spec) for p, s in native.items()}
        got = head + spec_results(events[cut:], spec, python)
    else:
        got = native_results(events, spec, [cut], between=lambda s: pickle.loads(pickle.dumps(s)))
    assert_identical(expected, got)
