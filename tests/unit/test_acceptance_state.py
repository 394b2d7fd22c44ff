"""Acceptance rules 2-4 (duplicate, late, segment) and the per-tick feature row, on small hand-made streams."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

from features.online import DUPLICATE, LATE, FeatureSpec, ProductState, update
from features.pipeline import FeaturePipeline
from features.ticks import Tick, raw_record

S = 1_000_000_000
T0 = 1_764_983_567_000_000_000  # 2025-12-06T01:12:47Z
SPEC = FeatureSpec(windows_s=(30.0, 60.0, 300.0), segment_gap_s=30.0)
COL = {name: i for i, name in enumerate(SPEC.columns)}


def tick(t_s: float, bid: float = 100.0, ask: float = 100.5, product: str = "BTC-USD", **kw) -> Tick:
    fields = dict(price=bid, best_bid_qty=1.0, best_ask_qty=3.0, volume_24h=10.0, sequence_num=None)
    fields.update(kw)
    return Tick(product, T0 + round(t_s * S), fields["price"], bid, ask, fields["best_bid_qty"],
                fields["best_ask_qty"], fields["volume_24h"], fields["sequence_num"])


def feed(ticks, spec=SPEC, forced=()):
    state = ProductState(spec)
    return state, [update(state, t, i in forced) for i, t in enumerate(ticks)]


def snapshot(state: ProductState) -> bytes:
    return pickle.dumps(state)


# --- rule 2: duplicates ----------------------------------------------------------------------


def test_exact_repeat_of_previous_tick_is_duplicate_and_changes_nothing():
    state, results = feed([tick(0), tick(1, 101, 101.5)])
    before = snapshot(state)
    assert update(state, tick(1, 101, 101.5)) == DUPLICATE
    assert snapshot(state) == before
    row = update(state, tick(2, 102, 102.5))
    assert row[COL["log_return"]] == pytest.approx(math.log(102.25 / 101.25), rel=1e-12)


@pytest.mark.parametrize("field", ["price", "best_bid", "best_ask", "best_bid_qty", "best_ask_qty",
                                   "volume_24h", "sequence_num", "ts_ns"])
def test_tick_differing_in_any_field_is_not_a_duplicate(field):
    first = tick(5, sequence_num=7)
    changed = first._replace(**{field: getattr(first, field) + 1 if field != "ts_ns" else first.ts_ns + 1})
    if field == "best_bid":
        changed = changed._replace(best_bid=first.best_bid - 0.25)  # keep the book uncrossed
    state, results = feed([first, changed])
    assert results[1] not in (DUPLICATE, LATE)
    assert results[1][COL["segment"]] == first.ts_ns


def test_duplicate_is_judged_against_the_previous_tick_of_the_same_product():
    state_a = ProductState(SPEC)
    state_b = ProductState(SPEC)
    a = tick(0, product="A")
    assert update(state_a, a) != DUPLICATE
    assert update(state_b, tick(0, product="B")) != DUPLICATE
    assert update(state_a, a) == DUPLICATE


def test_pipeline_counts_duplicates_without_rejecting(rec):
    pipeline = FeaturePipeline(SPEC)
    line = rec.line(rec.flat())
    assert len(pipeline.process(line)[0]) == 1
    rows, rejections = pipeline.process(line)
    assert rows == [] and rejections == []
    assert pipeline.summary.duplicates == 1
    assert pipeline.summary.accepted == 1
    assert sum(pipeline.summary.rejected.values()) == 0


def test_repeated_frame_is_a_duplicate_but_a_new_frame_with_same_quote_is_not(rec):
    pipeline = FeaturePipeline(SPEC)
    first = rec.line(rec.frame(sequence_num=2))
    pipeline.process(first)
    assert pipeline.process(first)[0] == []
    assert len(pipeline.process(rec.line(rec.frame(sequence_num=3)))[0]) == 1  # same time, next frame
    assert pipeline.summary.duplicates == 1 and pipeline.summary.accepted == 2


# --- rule 3: late ----------------------------------------------------------------------------


def test_tick_before_previous_accepted_is_late_and_changes_nothing():
    state, _ = feed([tick(0), tick(10, 101, 101.5)])
    before = snapshot(state)
    assert update(state, tick(9.999999999, 200, 200.5)) == LATE
    assert update(state, tick(0)) == LATE  # a repeat of an older tick is late, not a duplicate
    assert snapshot(state) == before
    row = update(state, tick(11, 102, 102.5))
    assert row[COL["log_return"]] == pytest.approx(math.log(102.25 / 101.25), rel=1e-12)


def test_tick_at_the_same_time_is_not_late():
    state, results = feed([tick(3), tick(3, 101, 101.5)])
    row = results[1]
    assert row not in (DUPLICATE, LATE)
    assert row[COL["log_return"]] == pytest.approx(math.log(101.25 / 100.25), rel=1e-12)
    assert row[COL["tick_rate_30s"]] == pytest.approx(2 / 30)


def test_late_is_per_product():
    pipeline = FeaturePipeline(SPEC)
    rows_a, _ = pipeline.process(json.dumps({"timestamp": "2025-12-06T01:12:50", "product_id": "A",
                                             "price": 1, "best_bid": 1, "best_ask": 2}).encode())
    rows_b, rej = pipeline.process(json.dumps({"timestamp": "2025-12-06T01:12:40", "product_id": "B",
                                               "price": 1, "best_bid": 1, "best_ask": 2}).encode())
    assert len(rows_a) == 1 and len(rows_b) == 1 and rej == []
    assert pipeline.summary.late == 0


def test_pipeline_reports_late_ticks_as_rejections(rec):
    pipeline = FeaturePipeline(SPEC)
    pipeline.process(rec.line(rec.flat(timestamp="2025-12-06T01:12:47.5")))
    rows, rejections = pipeline.process(rec.line(rec.flat(timestamp="2025-12-06T01:12:47.499999")))
    assert rows == []
    assert [r.reason for r in rejections] == ["late"]
    assert "BTC-USD" in rejections[0].detail
    assert pipeline.summary.late == 1
    assert pipeline.summary.rejected["late"] == 1
    assert pipeline.summary.accepted == 1


# --- rule 4: segments ------------------------------------------------------------------------


def test_gap_of_exactly_segment_gap_stays_in_segment_one_ns_more_starts_new():
    state, results = feed([tick(0), tick(30, 101, 101.5), tick(60.000000001, 102, 102.5)])
    first, same, new = results
    assert first[COL["segment"]] == same[COL["segment"]] == T0
    assert new[COL["segment"]] == T0 + 60 * S + 1
    assert state.segments == 2
    assert math.isnan(new[COL["log_return"]])
    assert new[COL["segment_age_s"]] == 0.0
    assert same[COL["segment_age_s"]] == pytest.approx(30.0)


def test_windows_do_not_reach_back_across_a_segment_start():
    _, results = feed([tick(0), tick(10, 101, 101.5), tick(20, 99, 99.5), tick(51, 100, 100.5)])
    row = results[3]
    for w in ("30s", "60s", "300s"):
        assert math.isnan(row[COL[f"rv_{w}"]])
        assert math.isnan(row[COL[f"ret_{w}"]])
    assert row[COL["tick_rate_300s"]] == pytest.approx(1 / 300)


def test_forced_segment_start_even_without_a_gap():
    state, results = feed([tick(0), tick(1, 101, 101.5), tick(2, 102, 102.5)], forced={1})
    assert [r[COL["segment"]] for r in results] == [T0, T0 + S, T0 + S]
    assert math.isnan(results[1][COL["log_return"]])
    assert results[2][COL["log_return"]] == pytest.approx(math.log(102.25 / 101.25), rel=1e-12)
    assert state.segments == 2


def test_raw_record_gap_starts_a_segment_for_every_product_in_it(rec):
    pipeline = FeaturePipeline(SPEC)
    tickers = [rec.ticker(product_id="BTC-USD"), rec.ticker(product_id="ETH-USD", best_bid="3000",
                                                             best_ask="3000.5", price="3000")]
    first = rec.frame(tickers, timestamp="2026-04-05T22:35:13Z", sequence_num=1)
    second = rec.frame(tickers, timestamp="2026-04-05T22:35:14Z", sequence_num=5)
    rows1, _ = pipeline.process(raw_record(json.dumps(first), T0))
    rows2, _ = pipeline.process(raw_record(json.dumps(second), T0 + S, gap="reconnect"))
    assert len(rows1) == len(rows2) == 2
    for row in rows2:
        assert row[COL["segment"]] == row[COL["ts"]]
        assert math.isnan(row[COL["log_return"]])
    assert pipeline.summary.segments == 4


def test_segment_counter_in_summary(rec):
    pipeline = FeaturePipeline(SPEC)
    for stamp in ["01:00:00", "01:00:10", "01:00:41", "01:00:50", "02:00:00"]:
        pipeline.process(rec.line(rec.flat(timestamp=f"2025-12-06T{stamp}")))
    assert pipeline.summary.segments == 3


# --- the feature row itself ------------------------------------------------------------------


def test_first_tick_row():
    state, results = feed([tick(0, 100.0, 100.5, best_bid_qty=1.0, best_ask_qty=3.0)])
    row = results[0]
    assert list(row[: COL["log_return"]]) == ["BTC-USD", T0, T0, 100.0, 100.0, 100.5, 100.25]
    assert math.isnan(row[COL["log_return"]])
    assert row[COL["spread_bps"]] == pytest.approx(0.5 / 100.25 * 1e4, rel=1e-12)
    assert row[COL["book_imbalance"]] == pytest.approx(-0.5)
    assert row[COL["segment_age_s"]] == 0.0
    for w in (30, 60, 300):
        assert math.isnan(row[COL[f"rv_{w}s"]]) and math.isnan(row[COL[f"ret_{w}s"]])
        assert row[COL[f"tick_rate_{w}s"]] == pytest.approx(1 / w)
    assert len(row) == len(SPEC.columns)


@pytest.mark.parametrize("bid_qty, ask_qty", [(None, None), (None, 1.0), (1.0, None), (0.0, 0.0)])
def test_book_imbalance_is_nan_without_usable_quantities(bid_qty, ask_qty):
    _, results = feed([tick(0, best_bid_qty=bid_qty, best_ask_qty=ask_qty)])
    assert math.isnan(results[0][COL["book_imbalance"]])


def test_window_values_on_a_small_stream():
    """Ticks at 0, 10, 20, 45 s: the 30 s window at 45 s holds the ticks at 20 and 45 s only."""
    mids = [100.25, 101.25, 99.75, 100.75]
    _, results = feed([tick(0, 100, 100.5), tick(10, 101, 101.5), tick(20, 99.5, 100), tick(45, 100.5, 101)])
    r = np.log(np.array(mids[1:]) / np.array(mids[:-1]))
    row = results[3]
    assert row[COL["ret_30s"]] == pytest.approx(r[1] + r[2], rel=1e-12)
    assert row[COL["rv_30s"]] == pytest.approx(np.std(r[1:]), rel=1e-9)
    assert row[COL["tick_rate_30s"]] == pytest.approx(2 / 30)
    assert row[COL["ret_60s"]] == pytest.approx(r.sum(), rel=1e-12)
    assert row[COL["rv_60s"]] == pytest.approx(np.std(r), rel=1e-9)
    assert row[COL["tick_rate_60s"]] == pytest.approx(4 / 60)
    # the window is half-open: at 30 s the tick at 0 s has just left the 30 s window
    _, results = feed([tick(0, 100, 100.5), tick(10, 101, 101.5), tick(30, 99.5, 100)])
    assert results[2][COL["tick_rate_30s"]] == pytest.approx(2 / 30)
    assert results[2][COL["ret_30s"]] == pytest.approx(math.log(99.75 / 100.25), rel=1e-12)
    assert math.isnan(results[1][COL["rv_30s"]])  # one return only


def test_state_survives_pickling_mid_stream():
    ticks = [tick(i * 0.7, 100 + (i % 5) * 0.25, 100.5 + (i % 5) * 0.25) for i in range(200)]
    state, expected = feed(ticks)
    resumed = ProductState(SPEC)
    got = [update(resumed, t) for t in ticks[:77]]
    resumed = pickle.loads(pickle.dumps(resumed))
    got += [update(resumed, t) for t in ticks[77:]]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert len(g) == len(e)
        assert all(a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)) for a, b in zip(g, e))


def test_pipeline_states_are_picklable(rec):
    pipeline = FeaturePipeline(SPEC)
    pipeline.process(rec.line(rec.flat()))
    states = pickle.loads(pickle.dumps(pipeline.states))
    assert set(states) == {"BTC-USD"}
    assert states["BTC-USD"].last == pipeline.states["BTC-USD"].last


def test_feature_spec_rejects_nonsense():
    with pytest.raises(ValueError):
        FeatureSpec(windows_s=())
    with pytest.raises(ValueError):
        FeatureSpec(windows_s=(30.0, -1.0))
    with pytest.raises(ValueError):
        FeatureSpec(segment_gap_s=0)
    with pytest.raises(ValueError):
        FeatureSpec(ewma_halflives_s=(60.0, 0.0))


def test_columns_follow_windows_then_half_lives():
    spec = FeatureSpec(windows_s=(0.5, 2.0), ewma_halflives_s=(1.0,))
    per_window = ("rv", "log_rv", "ret", "tick_rate", "spread_mean", "spread_rel")
    assert spec.columns[-14:] == (*(f"{n}_0.5s" for n in per_window), *(f"{n}_2s" for n in per_window),
                                  "ewma_rv_1s", "log_ewma_rv_1s")
    assert spec.model_features == ("log_rv_0.5s", "log_rv_2s", "log_ewma_rv_1s", "spread_rel_0.5s", "spread_rel_2s")
    assert not {"product_id", "ts", "segment", "price", "best_bid", "best_ask", "midprice"} & set(spec.model_features)
