"""Data drift and data summary reports (Evidently 0.7): early versus late, train versus test.

Per-column drift is the Wasserstein distance between the two samples divided by the
reference standard deviation: a shift measured in units of the feature's own spread. The
usual KS p-value answers "are these samples from exactly the same distribution", which on
tens of thousands of rows is "no" for any shift however small -- and rows a second apart
share most of their 30-300 s windows, so the effective sample is far smaller than the row
count and the p-values are far too confident. A distance does not shrink with n and does not
pretend the rows are independent. Evidently's built-in normed Wasserstein floors the
standard deviation at 0.001, which swallows whole features measured in log returns (~1e-5),
so the same statistic is registered here without that floor. A column counts as drifted at
0.1 reference standard deviations (Evidently's default for this statistic). The KS verdicts
are computed beside it, for contrast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from evidently import Report
from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset, DataSummaryPreset
from scipy import stats

DRIFT_THRESHOLD = 0.1
DATASET_DRIFT_SHARE = 0.5  # the dataset counts as drifted when half its columns do


def _wasserstein_sd(reference: pd.Series, current: pd.Series, _: ColumnType, threshold: float) -> tuple[float, bool]:
    sd = float(np.std(reference))
    distance = float(stats.wasserstein_distance(reference, current))
    value = distance / sd if sd > 0 else (0.0 if distance == 0 else float("inf"))
    return value, value >= threshold


WASSERSTEIN_SD = StatTest(
    name="wasserstein_sd",
    display_name="Wasserstein distance / reference std",
    allowed_feature_types=[ColumnType.Numerical],
    default_threshold=DRIFT_THRESHOLD,
)
register_stattest(WASSERSTEIN_SD, _wasserstein_sd)


def early_late(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """First and second half of the rows in time order."""
    table = table.sort_values("ts", kind="stable")
    half = len(table) // 2
    return table.iloc[:half], table.iloc[half:]


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], out_dir: Path, name: str
) -> dict[str, Any]:
    """Run drift + summary presets, save ``name``.html and ``name``.json, return the drift facts."""
    ref, cur = reference.loc[:, columns], current.loc[:, columns]
    snapshot = Report([
        DataDriftPreset(method=WASSERSTEIN_SD, threshold=DRIFT_THRESHOLD, drift_share=DATASET_DRIFT_SHARE),
        DataSummaryPreset(),
    ]).run(current_data=cur, reference_data=ref)
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out_dir / f"{name}.html"))
    snapshot.save_json(str(out_dir / f"{name}.json"))
    metrics = snapshot.dict()["metrics"]
    share = next(m["value"] for m in metrics if m["metric_name"].startswith("DriftedColumnsCount"))
    distances = {
        m["config"]["column"]: float(m["value"]) for m in metrics if m["metric_name"].startswith("ValueDrift(")
    }
    ks = {c: float(stats.ks_2samp(ref[c].dropna(), cur[c].dropna()).pvalue) for c in columns}
    return {
        "name": name,
        "reference": _span(reference),
        "current": _span(current),
        "method": "Wasserstein distance / reference std",
        "threshold": DRIFT_THRESHOLD,
        "drift_share": float(share["share"]),
        "drifted_count": int(share["count"]),
        "columns": len(columns),
        "dataset_drift": float(share["share"]) >= DATASET_DRIFT_SHARE,
        "drifted": sorted((c for c, v in distances.items() if v >= DRIFT_THRESHOLD), key=lambda c: -distances[c]),
        "distance": distances,
        "ks_pvalue": ks,
        "ks_drifted_count": sum(p < 0.05 for p in ks.values()),
        "html": str(out_dir / f"{name}.html"),
        "json": str(out_dir / f"{name}.json"),
    }


def _span(part: pd.DataFrame) -> dict[str, Any]:
    return {"start": part["ts"].min().isoformat(), "end": part["ts"].max().isoformat(), "rows": int(len(part))}


def write_summary(results: list[dict[str, Any]], out_dir: Path) -> Path:
    path = out_dir / "summary.json"
    path.write_text(json.dumps({r["name"]: r for r in results}, indent=2) + "\n")
    return path
