"""Classification metrics for rare spikes, and the validation-only choice of a threshold.

PR-AUC (average precision) is always reported with the positive rate beside it: a PR-AUC of
0.3 is good when spikes are 5 % of rows and worthless when they are 40 %.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
)


def choose_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score cut with the highest F1 (call it on validation data only)."""
    precision, recall, thresholds = precision_recall_curve(y, score)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.argmax(f1[:-1]))  # the last point (recall 0) has no threshold
    return float(thresholds[best])


def evaluate(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking, decision and probability metrics of ``score`` against 0/1 labels ``y``."""
    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    alert = score >= threshold
    tn, fp, fn, tp = confusion_matrix(y, alert, labels=[0, 1]).ravel()
    both_classes = 0 < y.sum() < len(y)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "pr_auc": float(average_precision_score(y, score)) if both_classes else float("nan"),
        "positive_rate": float(y.mean()),
        "roc_auc": float(roc_auc_score(y, score)) if both_classes else float("nan"),
        "f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
        "precision": float(precision),
        "recall": float(recall),
        "brier": float(brier_score_loss(y, score)),
        "alert_rate": float(alert.mean()),
        "rows": int(len(y)),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "tn": int(tn),
    }


def time_blocks(ts: pd.Series, block_s: float) -> np.ndarray:
    """Block number of each row: consecutive ``block_s`` windows of event time."""
    t = pd.to_datetime(ts).astype("int64").to_numpy()
    return (t - t.min()) // int(block_s * 1e9)


def block_bootstrap_pr_auc(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    blocks: np.ndarray,
    draws: int = 200,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """PR-AUC of each score over resamples of whole time blocks (the same resamples for all).

    Rows a few seconds apart share most of their windows, so resampling single rows would
    pretend to far more independent evidence than a one-hour test part holds.
    """
    rng = np.random.default_rng(seed)
    ids = np.unique(blocks)
    members = [np.flatnonzero(blocks == b) for b in ids]
    out: dict[str, list[float]] = {name: [] for name in scores}
    for _ in range(draws):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        sample_y = y[rows]
        if not 0 < sample_y.sum() < len(sample_y):
            continue  # a resample without spikes has no PR-AUC
        for name, score in scores.items():
            out[name].append(average_precision_score(sample_y, score[rows]))
    return {name: np.asarray(values) for name, values in out.items()}


def interval(values: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """Central percentile interval of bootstrap values (NaN when there are none)."""
    if values.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
