"""Reading and checking the feature table before any model sees it.

Every problem with the input becomes a ``TableError`` whose message names the file and says
what to do, so the command-line tools can print one line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa

KEY_COLUMNS = ("product_id", "ts")


class TableError(ValueError):
    """A feature table (or a part of it) that cannot be used as given."""


def read_table(path: str | Path, required: Iterable[str]) -> pd.DataFrame:
    """The table at ``path`` sorted by time, after checking it exists, has rows and the columns."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file; build it with `make replay` (scripts/replay.py)")
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise TableError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in dict.fromkeys([*KEY_COLUMNS, *required]) if c not in table.columns]
    if missing:
        raise TableError(
            f"{path}: missing column(s) {', '.join(missing)}; rebuild the table with scripts/replay.py"
        )
    if table.empty:
        raise TableError(f"{path}: the table has no rows; replay some raw data into it first")
    return table.sort_values("ts", kind="stable").reset_index(drop=True)


def labeled_rows(table: pd.DataFrame, sigma_col: str, source: str = "table") -> pd.DataFrame:
    """Rows whose future volatility is known; the others (segment ends) cannot be labeled."""
    kept = table[table[sigma_col].notna()].reset_index(drop=True)
    if kept.empty:
        raise TableError(
            f"{source}: no row has {sigma_col} (each segment needs more than the label horizon of data)"
        )
    return kept


def time_range(table: pd.DataFrame) -> dict[str, object]:
    """First and last timestamp and row count, as JSON-friendly values."""
    return {
        "start": table["ts"].min().isoformat() if len(table) else None,
        "end": table["ts"].max().isoformat() if len(table) else None,
        "rows": int(len(table)),
    }
