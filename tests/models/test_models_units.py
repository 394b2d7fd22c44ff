"""Pure pieces of the modelling: the weighted PR-AUC, the budget threshold, the folds, the forecaster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from models.forecast import SpikeForecaster
from models.metrics import RankedScores, budget_threshold, geometric_mean
from models.walkforward import REFERENCE, day_bootstrap, make_folds

FEATURES = ("log_rv_60s", "log_rv_300s", "spread_rel_60s")


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6), st.integers(0, 3)), min_size=2, max_size=60))
def test_weighted_average_precision_equals_sklearn_on_repeated_rows(rows):
    """Weight k must mean the row repeated k times, ties included (scores from a small set)."""
    y = np.array([r[0] for r in rows])
    score = np.array([r[1] for r in rows], dtype=float)
    w = np.array([r[2] for r in rows])
    repeated = np.repeat(np.arange(len(rows)), w)
    got = RankedScores(y, score).average_precision(w.astype(float))
    if repeated.size == 0 or not 0 < y[repeated].sum() < repeated.size:
        assert np.isnan(got)
    else:
        assert got == pytest.approx(average_precision_score(y[repeated], score[repeated]), abs=1e-12)


@pytest.mark.parametrize("budget", [0.01, 0.1, 0.25])
def test_budget_threshold_alerts_on_that_share_of_distinct_scores(budget):
    score = np.random.default_rng(3).random(10_000)
    threshold = budget_threshold(score, budget)
    assert (score >= threshold).mean() == pytest.approx(budget, abs=1e-4)


def test_geometric_mean_ignores_what_is_not_a_ratio():
    assert geometric_mean(np.array([2.0, 0.5, np.nan])) == pytest.approx(1.0)
    assert np.isnan(geometric_mean(np.array([np.nan])))


def test_folds_are_consecutive_with_train_validation_and_embargo():
    ts = pd.Series(pd.date_range("2025-11-24", periods=6000, freq="5s", tz="UTC"))
    folds = make_folds(ts, folds=5, initial_share=0.3, validation_share=0.2, embargo_s=60)
    assert len(folds) == 5
    t = ts.to_numpy()
    covered = np.concatenate([f.test for f in folds])
    assert covered[0] == 1800 and covered[-1] == 5999 and np.all(np.diff(covered) == 1)
    for f in folds:
        assert t[f.train[-1]] < t[f.validation[0]] - np.timedelta64(60, "s")
        assert t[f.validation[-1]] < t[f.test[0]] - np.timedelta64(60, "s")
        assert f.train[0] == 0 and len(f.validation) == pytest.approx(0.2 * (f.validation[-1] + 1), abs=15)


def _rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic rows where the future volatility follows log_rv_300s (plus noise), two products."""
    rng = np.random.default_rng(seed)
    level = rng.normal(-11, 0.5, n)
    frame = pd.DataFrame({
        "product_id": np.where(rng.random(n) < 0.5, "AAA-USD", "BBB-USD"),
        "log_rv_60s": level + rng.normal(0, 0.6, n), "log_rv_300s": level + rng.normal(0, 0.2, n),
        "spread_rel_60s": rng.normal(0, 0.3, n),
    })
    frame["sigma"] = np.exp(level + rng.normal(0, 0.3, n))
    return frame


def test_forecaster_probability_follows_its_score_and_the_row_tau():
    rows = _rows(4000)
    taus = {"AAA-USD": float(np.exp(-10.5)), "BBB-USD": float(np.exp(-10.8))}
    model = SpikeForecaster("har", FEATURES, "log_rv_60s", taus, float(np.exp(-10.6))).fit(rows, rows["sigma"])
    y = (rows["sigma"] >= rows["product_id"].map(taus)).astype(int).to_numpy()
    model.calibrate(rows, y)
    assert model.slope_ > 0
    p = model.predict_proba(rows)[:, 1]
    order = np.argsort(model.score(rows))
    assert np.all(np.diff(p[order]) >= 0)  # calibration keeps the ranking
    assert average_precision_score(y, p) > 2 * y.mean()
    # An unknown product (or no product column) is judged against the default tau.
    unknown = rows.assign(product_id="ZZZ-USD")
    np.testing.assert_allclose(model.log_tau(unknown), np.log(model.tau))
    np.testing.assert_allclose(model.log_tau(rows.drop(columns="product_id")), np.log(model.tau))


def test_forecast_sigma_does_not_depend_on_tau():
    rows = _rows(2000, seed=1)
    a = SpikeForecaster("har", FEATURES, "log_rv_60s", {"AAA-USD": 1e-5}, 1e-5).fit(rows, rows["sigma"])
    b = SpikeForecaster("har", FEATURES, "log_rv_60s", {"AAA-USD": 1e-3}, 1e-3).fit(rows, rows["sigma"])
    np.testing.assert_allclose(a.sigma(rows), b.sigma(rows))
    assert not np.allclose(a.score(rows), b.score(rows))


def test_persistence_forecast_is_the_current_volatility_shifted_to_the_median():
    rows = _rows(3000, seed=2)
    model = SpikeForecaster("persistence", FEATURES, "log_rv_60s", {}, 1e-5).fit(rows, rows["sigma"])
    shift = np.log(model.sigma(rows)) - rows["log_rv_60s"].to_numpy()
    assert np.allclose(shift, shift[0])
    assert np.median(np.log(rows["sigma"]) - np.log(model.sigma(rows))) == pytest.approx(0.0, abs=1e-9)


def test_calibration_without_spikes_falls_back_to_the_spike_rate():
    rows = _rows(500, seed=4)
    model = SpikeForecaster("persistence", FEATURES, "log_rv_60s", {}, 1.0).fit(rows, rows["sigma"])
    model.calibrate(rows, np.zeros(len(rows), dtype=int))
    assert np.all(model.predict_proba(rows)[:, 1] < 1e-5)


def test_day_bootstrap_of_the_reference_is_one_and_reproducible():
    rng = np.random.default_rng(5)
    n = 3000
    pred = pd.DataFrame({"fold": np.repeat([0, 1, 2], n // 3), "y": (rng.random(n) < 0.1).astype(int),
                         "day": np.repeat(["2025-11-24", "2025-11-25", "2025-11-26"], n // 3)})
    pred[f"p_{REFERENCE}"] = rng.random(n) + pred["y"] * 0.3
    pred["p_other"] = rng.random(n) + pred["y"] * 0.6
    first = day_bootstrap(pred, (REFERENCE, "other"), draws=50, seed=1)
    second = day_bootstrap(pred, (REFERENCE, "other"), draws=50, seed=1)
    np.testing.assert_array_equal(first["other"], second["other"])
    np.testing.assert_allclose(first[REFERENCE], 1.0)
    assert np.all(first["other"] > 1.0)  # the better score wins on every resample of days here
