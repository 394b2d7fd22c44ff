"""Metrics for rare spikes, the alert threshold of a budget, and a fast weighted PR-AUC.

PR-AUC (average precision) is always reported with the positive rate beside it: a PR-AUC of
0.3 is good when spikes are 5 % of rows and worthless when they are 40 %. Alerts fire at a
threshold chosen on validation so that a set share of rows alert (the alert budget), never at
the best F1, which on rare, bursty spikes alerts on most rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, confusion_matrix, roc_auc_score


def budget_threshold(score: np.ndarray, budget: float) -> float:
    """The score cut at which ``budget`` of these rows alert (call it on validation rows only)."""
    score = np.asarray(score, dtype=float)
    if score.size == 0:
        raise ValueError("no rows to choose an alert threshold on")
    return float(np.quantile(score, 1.0 - budget, method="higher"))


def evaluate(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking, decision and probability metrics of ``score`` (a probability) against 0/1 labels ``y``."""
    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    alert = score >= threshold
    tn, fp, fn, tp = confusion_matrix(y, alert, labels=[0, 1]).ravel()
    both_classes = 0 < y.sum() < len(y)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    rate = float(y.mean()) if len(y) else float("nan")
    return {
        "pr_auc": float(average_precision_score(y, score)) if both_classes else float("nan"),
        "positive_rate": rate,
        "roc_auc": float(roc_auc_score(y, score)) if both_classes else float("nan"),
        "precision": float(precision),
        "recall": float(recall),
        "precision_lift": float(precision / rate) if rate and np.isfinite(precision) else float("nan"),
        "brier": float(brier_score_loss(y, score)) if len(y) else float("nan"),
        "brier_skill": brier_skill(y, score),
        "alert_rate": float(alert.mean()) if len(y) else float("nan"),
        "rows": int(len(y)),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "tn": int(tn),
    }


def brier_skill(y: np.ndarray, p: np.ndarray) -> float:
    """1 - Brier / Brier of always predicting the positive rate: > 0 beats the base rate."""
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return float("nan")
    rate = y.mean()
    reference = rate * (1 - rate)
    return float(1 - np.mean((np.asarray(p) - y) ** 2) / reference) if reference > 0 else float("nan")


class RankedScores:
    """A score sorted once, so PR-AUC under many row weightings (a bootstrap) costs O(n) each."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
        self.order = order
        self.y = np.asarray(y, dtype=float)[order]
        s = np.asarray(score, dtype=float)[order]
        # The last row of each run of tied scores: precision is read there, as scikit-learn does.
        self.ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])

    def average_precision(self, weights: np.ndarray) -> float:
        """Average precision with row weights (``weights`` in the original row order); NaN without spikes."""
        w = np.asarray(weights, dtype=float)[self.order]
        tp = np.cumsum(w * self.y)[self.ends]
        seen = np.cumsum(w)[self.ends]
        total = tp[-1] if len(tp) else 0.0
        if total <= 0 or seen[-1] <= total:
            return float("nan")
        recall_step = np.diff(np.r_[0.0, tp]) / total
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(seen > 0, tp / seen, 0.0)
        return float(np.sum(recall_step * precision))


def interval(values: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """Central percentile interval of bootstrap values (NaN when there are none)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def geometric_mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.mean(np.log(values)))) if values.size else float("nan")
