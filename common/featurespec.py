"""The feature table's layout and the two settings that shape it: trailing windows and the segment gap.

Pure data, so the config loader (the ground floor) can hold it; ``features/online.py`` computes
the rows laid out here. A new column is named here and computed there.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_COLUMNS = (
    "product_id",
    "ts",  # ns since epoch, UTC (a timestamp column in tables)
    "segment",  # time of the first tick of the segment, ns since epoch (timestamp in tables)
    "price",
    "best_bid",
    "best_ask",
    "midprice",
    "log_return",
    "spread_bps",
    "book_imbalance",
    "segment_age_s",
)
WINDOW_FEATURES = ("rv", "ret", "tick_rate")
TIME_COLUMNS = ("ts", "segment")


@dataclass(frozen=True)
class FeatureSpec:
    """The feature definition: trailing windows and the gap that starts a new segment."""

    windows_s: tuple[float, ...] = (30.0, 60.0, 300.0)
    segment_gap_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.windows_s or any(w <= 0 for w in self.windows_s):
            raise ValueError(f"windows_s must be positive seconds, got {self.windows_s}")
        if self.segment_gap_s <= 0:
            raise ValueError(f"segment_gap_s must be positive, got {self.segment_gap_s}")

    @property
    def columns(self) -> tuple[str, ...]:
        """Row layout: the base columns, then rv/ret/tick_rate for each window in turn."""
        return BASE_COLUMNS + tuple(
            f"{name}_{w:g}s" for w in self.windows_s for name in WINDOW_FEATURES
        )

    @property
    def model_features(self) -> tuple[str, ...]:
        """The stationary market columns a model may use.

        Left out: ids, times and price levels, and ``segment_age_s``, which measures how long
        the recorder has been connected, not the market (a model learns recording artefacts from it).
        """
        return ("log_return", "spread_bps", "book_imbalance") + self.columns[len(BASE_COLUMNS) :]
