"""The feature table's layout and the settings that shape it: trailing windows, EWMA half-lives, segment gap.

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
WINDOW_FEATURES = ("rv", "log_rv", "ret", "tick_rate", "spread_mean", "spread_rel")
EWMA_FEATURES = ("ewma_rv", "log_ewma_rv")
TIME_COLUMNS = ("ts", "segment")


@dataclass(frozen=True)
class FeatureSpec:
    """The feature definition: trailing windows, EWMA half-lives and the gap that starts a segment."""

    windows_s: tuple[float, ...] = (30.0, 60.0, 300.0, 900.0)
    ewma_halflives_s: tuple[float, ...] = (60.0, 600.0)
    segment_gap_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.windows_s or any(w <= 0 for w in self.windows_s):
            raise ValueError(f"windows_s must be positive seconds, got {self.windows_s}")
        if any(h <= 0 for h in self.ewma_halflives_s):
            raise ValueError(f"ewma_halflives_s must be positive seconds, got {self.ewma_halflives_s}")
        if self.segment_gap_s <= 0:
            raise ValueError(f"segment_gap_s must be positive, got {self.segment_gap_s}")

    @property
    def columns(self) -> tuple[str, ...]:
        """Row layout: the base columns, the window columns for each window in turn, then the EWMAs."""
        return (
            BASE_COLUMNS
            + tuple(f"{name}_{w:g}s" for w in self.windows_s for name in WINDOW_FEATURES)
            + tuple(f"{name}_{h:g}s" for h in self.ewma_halflives_s for name in EWMA_FEATURES)
        )

    @property
    def model_features(self) -> tuple[str, ...]:
        """The columns models use: scale-free volatility state, the same for every product and feed.

        Logs of the realized and EWMA volatilities (a HAR-style forecaster is linear in them) and
        the spread relative to its own trailing means. Walk-forward across days chose these: the
        levels of spreads, tick rates, returns and book imbalance differ between products and
        feeds, and models given them learned the product rather than the minute ahead. Left
        out too: ids, times, price levels and ``segment_age_s`` (how long the recorder has been
        connected, not the market).
        """
        return (
            tuple(f"log_rv_{w:g}s" for w in self.windows_s)
            + tuple(f"log_ewma_rv_{h:g}s" for h in self.ewma_halflives_s)
            + tuple(f"spread_rel_{w:g}s" for w in self.windows_s)
        )
