"""Labels computed as rows stream by (FutureSigma, LabeledRows) equal add_future_sigma on the whole table.

Bit for bit, whatever the batch boundaries, and rows leave in their order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from features.labels import add_future_sigma, sigma_column
from features.streamed_labels import FutureSigma
from features.online import FeatureSpec
from features.pipeline import FeaturePipeline
from features.replay import LabeledRows
from test_native_fold import bits
from features.ticks import Tick
from test_properties import FAST, S, T0, TIGHT, Event, feature_table, long_stream, run_implementation, streams


def _burst_on_the_horizon() -> tuple[FeatureSpec, list[Event]]:
    """Two ticks exactly one horizon (1 s) after a row, arriving in different batches: both are its future."""
    quotes = [(0, 100.0), (S // 2, 100.5), (S, 101.0), (S, 99.0), (2 * S, 100.0), (3 * S, 100.25), (5 * S, 100.0)]
    return TIGHT, [Event(Tick("A", T0 + dt, bid, bid, bid + 0.5), False) for dt, bid in quotes]


def batch_bounds(n: int, cuts: list[int]) -> list[tuple[int, int]]:
    bounds = [0, *sorted({c for c in cuts if 0 < c < n}), n]
    return list(zip(bounds[:-1], bounds[1:]))


def streamed_sigma(rows: list[list], cuts: list[int], horizon_s: float) -> np.ndarray:
    products = sorted({r[0] for r in rows})
    code = np.array([products.index(r[0]) for r in rows], dtype=np.int64)
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    log_return = np.array([r[7] for r in rows], dtype=np.float64)
    labels = FutureSigma(horizon_s)
    sigma = np.full(len(rows), -1.0)
    seen = np.zeros(len(rows), dtype=np.int64)
    for lo, hi in batch_bounds(len(rows), cuts):
        done, values = labels.push(products, code[lo:hi], ts[lo:hi], log_return[lo:hi])
        sigma[done] = values
        seen[done] += 1
    done, values = labels.finish()
    sigma[done] = values
    seen[done] += 1
    assert (seen == 1).all()  # every row labeled exactly once
    return sigma


def assert_same_bits(a: np.ndarray, b: np.ndarray) -> None:
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        assert bits(x) == bits(y) or (x != x and y != y), f"row {i}: {x!r} != {y!r}"


@settings(max_examples=100, **FAST)
@given(streams(min_size=40), st.sampled_from([1.0, 4.0, 60.0]), st.lists(st.integers(0, 200), max_size=5))
@example(_burst_on_the_horizon(), 1.0, [3])
def test_streamed_labels_equal_the_table_labels_bit_for_bit(case, horizon_s, cuts):
    spec, events = case
    rows = [r for r in run_implementation(events, spec) if isinstance(r, list)]
    if not rows:
        return
    expected = add_future_sigma(feature_table(rows, spec), horizon_s)[sigma_column(horizon_s)].to_numpy()
    assert_same_bits(expected, streamed_sigma(rows, cuts, horizon_s))


def test_long_stream_labels_equal_the_table_labels():
    """Long segments, where the streamed labeler forgets the rows it no longer needs."""
    spec = FeatureSpec(windows_s=(0.5, 2.0), ewma_halflives_s=(1.0,), segment_gap_s=5)
    events = long_stream(np.random.default_rng(11), 30_000, 1e-4, spec)
    rows = [r for r in run_implementation(events, spec) if isinstance(r, list)]
    expected = add_future_sigma(feature_table(rows, spec), 1.0)[sigma_column(1.0)].to_numpy()
    assert_same_bits(expected, streamed_sigma(rows, [1, 777, 5000, 5001, 20_000], 1.0))


@settings(max_examples=30, **FAST)
@given(streams(min_size=40), st.lists(st.integers(1, 60), min_size=1, max_size=8))
def test_labeled_rows_leave_in_order_with_their_labels(case, sizes):
    """LabeledRows (what replay writes): the same table as labeling the whole table at the end."""
    spec, events = case
    lines = [
        ('{"timestamp": %d, "product_id": "%s", "price": %r, "best_bid": %r, "best_ask": %r}'
         % (e.tick.ts_ns, e.tick.product_id, e.tick.price, e.tick.best_bid, e.tick.best_ask)).encode()
        for e in events
    ]
    pipeline = FeaturePipeline(spec)
    labeled = LabeledRows(spec, 4.0)
    out: list[pa.RecordBatch] = []
    whole = []
    at = 0
    k = 0
    while at < len(lines):
        size = sizes[k % len(sizes)]
        batch, _ = pipeline.process_batch(lines[at:at + size])
        whole.extend(batch.rows())
        out.extend(labeled.push(batch))
        at += size
        k += 1
    out.extend(labeled.finish())
    got = pa.Table.from_batches(out, schema=labeled.schema).to_pandas()
    expected = add_future_sigma(feature_table(whole, spec), 4.0) if whole else got.iloc[:0]
    assert len(got) == len(expected)
    if whole:
        assert got["ts"].tolist() == expected["ts"].tolist()
        assert_same_bits(expected[sigma_column(4.0)].to_numpy(), got[sigma_column(4.0)].to_numpy())
