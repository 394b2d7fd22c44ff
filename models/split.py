"""Time-ordered train / validation / test split with an embargo between the parts.

Rows are cut at row quantiles of the time-sorted labeled table (the sample has hours-long
gaps between recordings, so quantiles of the time range would put almost everything in one
part). The label of a row at time t looks at ticks up to t + horizon, so the last
``embargo_s`` seconds before each cut are dropped from the earlier part: no label of an
earlier part is computed from ticks of a later one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.data import TableError, time_range

PART_NAMES = ("train", "validation", "test")


@dataclass
class TimeSplit:
    """The three parts (each sorted by time) and what the embargo dropped."""

    parts: dict[str, pd.DataFrame]
    embargo_s: float
    dropped_by_embargo: int
    boundaries: list[str] = field(default_factory=list)

    def ranges(self) -> dict[str, dict[str, object]]:
        """Per part: first and last timestamp and row count (stored with every model)."""
        return {name: time_range(part) for name, part in self.parts.items()}


def time_split(
    table: pd.DataFrame,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    embargo_s: float = 60.0,
) -> TimeSplit:
    """Split ``table`` (labeled rows) in time order; raises TableError if a part ends up empty."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise TableError(f"split fractions must be three positive numbers summing to 1, got {fractions}")
    table = table.sort_values("ts", kind="stable").reset_index(drop=True)
    n = len(table)
    cut1 = int(round(n * fractions[0]))
    cut2 = int(round(n * (fractions[0] + fractions[1])))
    if not 0 < cut1 < cut2 < n:
        raise TableError(f"{n} labeled rows are too few to split into train, validation and test")
    ts = table["ts"]
    b1, b2 = ts.iloc[cut1], ts.iloc[cut2]
    embargo = pd.Timedelta(seconds=embargo_s)
    parts = {
        "train": table[ts < b1 - embargo],
        "validation": table[(ts >= b1) & (ts < b2 - embargo)],
        "test": table[ts >= b2],
    }
    for name, part in parts.items():
        if part.empty:
            raise TableError(f"the {name} part is empty after the {embargo_s:g} s embargo; use more data")
    kept = sum(len(p) for p in parts.values())
    return TimeSplit(
        parts={k: v.reset_index(drop=True) for k, v in parts.items()},
        embargo_s=embargo_s,
        dropped_by_embargo=n - kept,
        boundaries=[b1.isoformat(), b2.isoformat()],
    )


def parts_from_ranges(table: pd.DataFrame, ranges: dict[str, dict[str, object]]) -> dict[str, pd.DataFrame]:
    """Rebuild the parts of a stored split from their time ranges (reports rescore with this)."""
    parts = {}
    ts = table["ts"]
    for name in PART_NAMES:
        start, end = pd.Timestamp(ranges[name]["start"]), pd.Timestamp(ranges[name]["end"])
        parts[name] = table[(ts >= start) & (ts <= end)].reset_index(drop=True)
    return parts


def tau_from_train(sigma_train: pd.Series, percentile: float) -> float:
    """The spike threshold: the configured percentile of future volatility on training rows."""
    values = sigma_train.dropna().to_numpy(dtype=float)
    if values.size == 0:
        raise TableError("the train part has no labeled rows to set tau from")
    return float(np.percentile(values, percentile))
