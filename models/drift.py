"""Data drift, calibrated on the training rows themselves, and the Evidently reports that show it.

Per column, the statistic is the Wasserstein distance between two samples divided by the
reference standard deviation: a shift in units of the feature's own spread. Rows a second apart
share most of their windows, so tests that treat rows as independent (KS p-values) flag every
column of every window; and two windows of the *same* market an hour apart differ by far more
than sampling noise. So the decision is calibrated against that variation: a column drifts when
its distance exceeds a quantile of its distances between windows of the training rows (each
product's windows against that product's training rows), and a window drifts when at least
``dataset_share`` of the model's columns do. Label columns never take part.

The quantile is the lowest that keeps the false-alarm rate at the target when each training
day is judged as new data: its windows against the other days' rows, with thresholds from the
other days' windows (each hour against the others when the rows span a single day). Detection is measured on captures of other periods.
Evidently's built-in normed Wasserstein floors the standard deviation at 0.001, which swallows
features measured in log returns, so the statistic is registered here without that floor.
"""

from __future__ import annotations

import html
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

DEFAULT_THRESHOLD = 0.1  # reference standard deviations, when no calibration is given
MIN_WINDOW_ROWS = 100
MAX_REFERENCE_ROWS = 20_000
QUANTILES = (0.9, 0.95, 0.975, 0.99, 0.995, 1.0)  # of the training windows' distances, tried in turn


def distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein distance in reference standard deviations (NaNs left out)."""
    return SortedSample(reference).distance(current)


class SortedSample:
    """A reference column sorted once, so distances to many windows cost a merge each, not a sort."""

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        self.values = np.sort(values[np.isfinite(values)])
        self.sd = float(np.std(self.values)) if self.values.size else float("nan")

    def distance(self, current: np.ndarray) -> float:
        a = self.values
        b = np.asarray(current, dtype=float)
        b = np.sort(b[np.isfinite(b)])
        if a.size == 0 or b.size == 0:
            return float("nan")
        both = np.sort(np.concatenate([a, b]))
        # W1 = integral of |F_a - F_b| over the merged support (as scipy.stats.wasserstein_distance)
        fa = np.searchsorted(a, both[:-1], side="right") / a.size
        fb = np.searchsorted(b, both[:-1], side="right") / b.size
        d = float(np.sum(np.abs(fa - fb) * np.diff(both)))
        return d / self.sd if self.sd > 0 else (0.0 if d == 0 else float("inf"))


def _wasserstein_sd(reference: pd.Series, current: pd.Series, _: ColumnType, threshold: float) -> tuple[float, bool]:
    value = distance(reference.to_numpy(dtype=float), current.to_numpy(dtype=float))
    return value, value >= threshold


WASSERSTEIN_SD = StatTest(
    name="wasserstein_sd",
    display_name="Wasserstein distance / reference std",
    allowed_feature_types=[ColumnType.Numerical],
    default_threshold=DEFAULT_THRESHOLD,
)
register_stattest(WASSERSTEIN_SD, _wasserstein_sd)


def thin(table: pd.DataFrame, max_rows: int = MAX_REFERENCE_ROWS) -> pd.DataFrame:
    """Evenly spaced rows, at most ``max_rows`` (a reference of any size costs the same)."""
    if len(table) <= max_rows:
        return table
    return table.iloc[np.linspace(0, len(table) - 1, max_rows).round().astype(int)]


def windows(table: pd.DataFrame, minutes: float) -> list[pd.DataFrame]:
    """Consecutive event-time windows of one product's rows, each with enough rows to compare."""
    t = table["ts"].astype("int64").to_numpy()
    if t.size == 0:
        return []
    ids = (t - t.min()) // int(minutes * 60e9)
    out = [table.iloc[idx] for idx in np.split(np.arange(len(t)), np.flatnonzero(np.diff(ids)) + 1)]
    return [w for w in out if len(w) >= MIN_WINDOW_ROWS]


def window_distances(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], minutes: float) -> pd.DataFrame:
    """Per product, each window of ``current`` against ``reference`` rows of the same product: one row of
    column distances per window (with its product, start and row count)."""
    rows = []
    for product, cur in current.groupby("product_id", sort=True):
        ref = thin(reference[reference["product_id"] == product])
        if ref.empty:
            continue
        samples = {c: SortedSample(ref[c].to_numpy(dtype=float)) for c in columns}
        for w in windows(cur.sort_values("ts", kind="stable"), minutes):
            row = {"product_id": product, "start": w["ts"].iloc[0], "rows": len(w)}
            row.update({c: samples[c].distance(w[c].to_numpy(dtype=float)) for c in columns})
            rows.append(row)
    return pd.DataFrame(rows, columns=["product_id", "start", "rows", *columns])


def column_thresholds(null: pd.DataFrame, columns: list[str], quantile: float) -> dict[str, float]:
    return {c: float(np.nanquantile(null[c], quantile)) for c in columns}


def flagged(dist: pd.DataFrame, thresholds: dict[str, float], share: float) -> np.ndarray:
    """True for each window where at least ``share`` of the columns exceed their thresholds."""
    if dist.empty:
        return np.zeros(0, dtype=bool)
    over = np.column_stack([dist[c].to_numpy() > thresholds[c] for c in thresholds])
    return over.mean(axis=1) >= share


def calibrate(train: pd.DataFrame, columns: list[str], minutes: float, share: float,
              false_alarm_target: float) -> dict[str, Any]:
    """Per-column thresholds from the training windows, at the lowest quantile whose false-alarm rate
    leaving one day out (each day's windows against the other days' rows and thresholds) meets the target."""
    null = window_distances(train, train, columns, minutes)
    if null.empty:
        raise ValueError(f"no {minutes:g}-minute window of the training rows holds {MIN_WINDOW_ROWS} rows")
    unit = "day"
    day = train["ts"].dt.strftime("%Y-%m-%d")
    if day.nunique() < 2:  # one day of training rows: judge each hour against the others instead
        unit, day = "hour", train["ts"].dt.strftime("%Y-%m-%d %H:00")
    held_out = []  # per day: (thresholds source = the other days' windows, that day's windows against them)
    for d in sorted(day.unique()):
        rest, held = train[day != d], train[day == d]
        if rest.empty:
            continue
        rest_null = window_distances(rest, rest, columns, minutes)
        held_dist = window_distances(rest, held, columns, minutes)
        if not rest_null.empty and not held_dist.empty:
            held_out.append((d, rest_null, held_dist))
    tried = []
    for q in QUANTILES:
        by_day = {d: flagged(h, column_thresholds(r, columns, q), share) for d, r, h in held_out}
        windows_n = sum(f.size for f in by_day.values())
        rate = sum(int(f.sum()) for f in by_day.values()) / windows_n if windows_n else float("nan")
        tried.append({"column_quantile": q, "false_alarm_rate": rate, "windows": windows_n,
                      "by_day": {d: {"windows": int(f.size), "alarms": int(f.sum())} for d, f in by_day.items()}})
        if np.isfinite(rate) and rate <= false_alarm_target:
            break
    chosen = tried[-1]
    thresholds = column_thresholds(null, columns, chosen["column_quantile"])
    return {
        "window_minutes": minutes, "dataset_share": share, "false_alarm_target": false_alarm_target,
        "column_quantile": chosen["column_quantile"], "thresholds": thresholds,
        "training_windows": int(len(null)), "held_out_unit": unit, "held_out": [d for d, _, _ in held_out],
        "in_sample_false_alarm_rate": float(flagged(null, thresholds, share).mean()),
        "leave_one_day_out": chosen, "quantiles_tried": tried,
        "target_met": bool(np.isfinite(chosen["false_alarm_rate"]) and chosen["false_alarm_rate"] <= false_alarm_target),
    }


def detection(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], calibration: dict[str, Any],
              name: str) -> dict[str, Any]:
    """Share of ``current``'s windows called drifted against ``reference`` with the calibrated thresholds."""
    dist = window_distances(reference, current, columns, calibration["window_minutes"])
    flags = flagged(dist, calibration["thresholds"], calibration["dataset_share"])
    over = {c: float((dist[c] > calibration["thresholds"][c]).mean()) for c in columns} if len(dist) else {}
    return {"name": name, "windows": int(flags.size), "detected": int(flags.sum()),
            "detection_rate": float(flags.mean()) if flags.size else float("nan"),
            "column_exceed_rate": over, "reference": span(reference), "current": span(current)}


def span(part: pd.DataFrame) -> dict[str, Any]:
    products = sorted(part["product_id"].unique().tolist()) if "product_id" in part.columns else []
    return {"start": part["ts"].min().isoformat(), "end": part["ts"].max().isoformat(), "rows": int(len(part)),
            "products": products}


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], out_dir: Path, name: str,
                 calibration: dict[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    """Run drift + summary presets, save ``name``.html (with a header naming both windows) and ``name``.json.

    With a ``calibration`` the per-column thresholds and the dataset share are the calibrated
    ones; without, every column uses ``DEFAULT_THRESHOLD`` and half the columns make a drift.
    """
    thresholds = (calibration or {}).get("thresholds") or {c: DEFAULT_THRESHOLD for c in columns}
    share = (calibration or {}).get("dataset_share", 0.5)
    ref, cur = thin(reference).loc[:, columns], current.loc[:, columns]
    snapshot = Report([
        DataDriftPreset(method=WASSERSTEIN_SD, per_column_threshold={c: thresholds[c] for c in columns},
                        drift_share=share),
        DataSummaryPreset(),
    ]).run(current_data=cur, reference_data=ref)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out_dir / f"{name}.html", out_dir / f"{name}.json"
    snapshot.save_html(str(html_path))
    snapshot.save_json(str(json_path))
    distances = {c: distance(ref[c].to_numpy(dtype=float), cur[c].to_numpy(dtype=float)) for c in columns}
    drifted = sorted((c for c in columns if distances[c] > thresholds[c]), key=lambda c: -distances[c] / thresholds[c])
    result = {
        "name": name, "reference": span(reference), "current": span(current),
        "method": "Wasserstein distance / reference std", "calibrated": calibration is not None,
        "thresholds": thresholds, "dataset_share": share, "distance": distances, "drifted": drifted,
        "drifted_count": len(drifted), "columns": len(columns), "drift_share": len(drifted) / len(columns),
        "dataset_drift": len(drifted) / len(columns) >= share, "html": str(html_path), "json": str(json_path),
    }
    _add_header(html_path, result, description)
    return result


def _add_header(path: Path, result: dict[str, Any], description: str) -> None:
    """Say at the top of the HTML what is compared with what, and how the decision is made."""
    ref, cur = result["reference"], result["current"]
    rule = ("per-column thresholds calibrated on windows of the training rows" if result["calibrated"]
            else f"a fixed threshold of {DEFAULT_THRESHOLD:g} reference standard deviations per column")
    banner = (
        '<div style="font-family:sans-serif;padding:10px 16px;background:#fff4e5;border-bottom:1px solid #e0c9a6">'
        f"<b>{html.escape(result['name'])}</b>: {html.escape(description)}<br>"
        f"Reference: {ref['start']} to {ref['end']} UTC, {ref['rows']:,} rows ({', '.join(ref['products']) or 'all'}). "
        f"Current: {cur['start']} to {cur['end']} UTC, {cur['rows']:,} rows ({', '.join(cur['products']) or 'all'}).<br>"
        f"Statistic: Wasserstein distance / reference std; a column drifts above {rule}; the dataset drifts when at "
        f"least {result['dataset_share']:.0%} of the {result['columns']} model columns do. Verdict: "
        f"<b>{'drift' if result['dataset_drift'] else 'no drift'}</b> ({result['drifted_count']}/{result['columns']}).</div>"
    )
    text = path.read_text()
    at = text.find("<body")
    at = text.find(">", at) + 1 if at >= 0 else 0
    path.write_text(text[:at] + banner + text[at:])


def write_summary(results: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / "summary.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path
