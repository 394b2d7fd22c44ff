"""The label: realized volatility of the next ``horizon_s`` seconds, and the spike flag.

For the row of tick i at time t, ``sigma_future_60s`` is the population standard deviation
(ddof=0) of the log returns of the ticks j of the same product and segment with
t < ts_j <= t + 60 s. It is NaN unless there are at least 2 such returns and the segment's
last tick is at or after t + 60 s (otherwise the future is not fully observed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas only in annotations: processes that replay need not import it
    import pandas as pd


def sigma_column(horizon_s: float) -> str:
    return f"sigma_future_{horizon_s:g}s"


def add_future_sigma(table: pd.DataFrame, horizon_s: float = 60.0) -> pd.DataFrame:
    """Return ``table`` with the future-volatility column added (rows keep their order).

    Rows of a product must be in the order the feature pipeline produced them.
    """
    sigma = np.full(len(table), np.nan)
    if len(table):
        ts = table["ts"].to_numpy("datetime64[ns]").view("int64")
        returns = table["log_return"].to_numpy("float64")
        horizon_ns = round(horizon_s * 1e9)
        for positions in table.groupby("product_id", sort=False).indices.values():
            # A segment's first tick is the only row without a log return. Splitting there,
            # rather than grouping by the segment column, keeps two segments apart even when
            # they start at the same instant (a recorder gap flagged within one timestamp).
            for segment in np.split(positions, np.flatnonzero(np.isnan(returns[positions]))):
                if len(segment):
                    sigma[segment] = _segment_future_sigma(ts[segment], returns[segment], horizon_ns)
    return table.assign(**{sigma_column(horizon_s): sigma})


def _segment_future_sigma(ts: np.ndarray, returns: np.ndarray, horizon_ns: int) -> np.ndarray:
    """Vectorized over one segment (rows in time order) with prefix sums."""
    r = np.nan_to_num(returns, nan=0.0)  # the segment's first tick has no return
    r[0] = 0.0
    cum = np.concatenate([[0.0], np.cumsum(r)])
    cum_sq = np.concatenate([[0.0], np.cumsum(r * r)])
    start = np.searchsorted(ts, ts, side="right")  # first tick strictly after t
    end = np.searchsorted(ts, ts + horizon_ns, side="right")  # first tick beyond t + horizon
    n = end - start  # returns of ticks start .. end-1
    total = cum[end] - cum[start]
    total_sq = cum_sq[end] - cum_sq[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = total_sq / n - (total / n) ** 2
    sigma = np.sqrt(np.clip(var, 0.0, None))
    observed = ts[-1] >= ts + horizon_ns
    return np.where((n >= 2) & observed, sigma, np.nan)


def spike_label(sigma_future: pd.Series, tau: float) -> pd.Series:
    """1 when the future volatility reaches tau, 0 below it, missing where sigma is NaN."""
    return (sigma_future >= tau).astype("Int8").where(sigma_future.notna())
