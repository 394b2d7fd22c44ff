"""Scoring a feature table with a loaded model, and measuring how fast that is.

Speed is compared with real time: the table covers some seconds of market activity (the sum
of its segments' durations); scoring must take well under that to keep up live.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from models.artifacts import LoadedModel
from models.metrics import evaluate


def predictions(model: LoadedModel, table: pd.DataFrame, sigma_col: str) -> pd.DataFrame:
    """product_id, ts, score, sigma (the forecast), alert, and label (nullable, against the row's
    product tau) where the future volatility is known."""
    score = model.score(table)
    out = pd.DataFrame({"product_id": table["product_id"].to_numpy(), "ts": table["ts"].to_numpy(),
                        "score": score, "sigma": model.sigma(table), "alert": score >= model.threshold})
    if sigma_col in table.columns:
        taus = model.meta.get("taus") or {}
        row_tau = table["product_id"].map(taus).astype(float).fillna(model.tau)
        out["label"] = (table[sigma_col] >= row_tau).astype("Int8").where(table[sigma_col].notna()).to_numpy()
    else:
        out["label"] = pd.array([pd.NA] * len(out), dtype="Int8")
    return out


def label_metrics(pred: pd.DataFrame, threshold: float) -> dict[str, float] | None:
    """Metrics on the rows that have a label; None when no row has one."""
    known = pred[pred["label"].notna()]
    if known.empty:
        return None
    return evaluate(known["label"].to_numpy(dtype=int), known["score"].to_numpy(), threshold)


def covered_seconds(table: pd.DataFrame) -> float:
    """Seconds of market time the table spans, gaps between segments left out."""
    spans = table.groupby(["product_id", "segment"])["ts"].agg(["min", "max"])
    return float((spans["max"] - spans["min"]).dt.total_seconds().sum())


def benchmark(model: LoadedModel, table: pd.DataFrame, min_seconds: float = 1.0,
              single_rows: int = 300, seed: int = 0) -> dict[str, Any]:
    """Batch throughput, one-row latency, and both as multiples of real time."""
    model.score(table.head(10))  # warm-up: first calls allocate
    repeats, start = 0, time.perf_counter()
    while True:
        model.score(table)
        repeats += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or repeats >= 50:
            break
    rows_per_s = repeats * len(table) / elapsed
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(table), min(single_rows, len(table)))
    latencies = []
    for i in picks:
        row = table.iloc[[int(i)]]
        t0 = time.perf_counter()
        model.score(row)
        latencies.append(time.perf_counter() - t0)
    lat = np.asarray(latencies)
    market_s = covered_seconds(table)
    ticks_per_s = len(table) / market_s if market_s > 0 else float("nan")
    return {
        "model": model.name,
        "rows": int(len(table)),
        "market_seconds": market_s,
        "ticks_per_market_second": ticks_per_s,
        "batch_rows_per_s": rows_per_s,
        "batch_realtime_ratio": rows_per_s / ticks_per_s,
        "row_latency_ms_p50": float(np.percentile(lat, 50) * 1e3),
        "row_latency_ms_p95": float(np.percentile(lat, 95) * 1e3),
        "row_latency_ms_p99": float(np.percentile(lat, 99) * 1e3),
        "row_realtime_ratio": (1.0 / lat.mean()) / ticks_per_s,
    }
