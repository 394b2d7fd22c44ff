"""The evaluation figures, drawn on given Axes so MLflow, the PDF and the notebook share them."""

from __future__ import annotations

import os
from typing import Mapping

import matplotlib

if "MPLBACKEND" not in os.environ:  # a notebook kernel sets its inline backend there
    matplotlib.use("Agg")  # scripts only write files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from models.forecast import LABELS  # noqa: E402

COLORS = {"persistence": "#7f7f7f", "zscore": "#ff7f0e", "har": "#1f77b4", "gbm": "#2ca02c"}
LINESTYLES = {"persistence": "-", "zscore": ":", "har": "-", "gbm": "-"}

Curves = Mapping[str, tuple[np.ndarray, np.ndarray]]  # model name -> (labels, scores)


def _label(name: str) -> str:
    return LABELS.get(name, name)


def pr_curves(ax: Axes, curves: Curves, title: str) -> None:
    """Precision-recall per model, with the positive rate (a random ranker's precision) dashed."""
    rate = None
    for name, (y, score) in curves.items():
        precision, recall, _ = precision_recall_curve(y, score)
        ax.step(recall, precision, where="post", color=COLORS.get(name), ls=LINESTYLES.get(name, "-"),
                lw=1.5, label=_label(name))
        rate = float(np.mean(y))
    if rate is not None:
        ax.axhline(rate, color="black", ls="--", lw=0.8, label=f"positive rate {rate:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)


def roc_curves(ax: Axes, curves: Curves, title: str) -> None:
    for name, (y, score) in curves.items():
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, color=COLORS.get(name), ls=LINESTYLES.get(name, "-"), lw=1.5, label=_label(name))
    ax.plot([0, 1], [0, 1], color="black", ls="--", lw=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)


def calibration(ax: Axes, curves: Curves, title: str, bins: int = 10) -> None:
    """Reliability: mean predicted probability against the observed spike rate, in equal-count bins,
    with the Brier score of each model in the legend."""
    top = 0.0
    for name, (y, score) in curves.items():
        order = np.argsort(score, kind="stable")
        groups = np.array_split(order, bins)
        predicted = [score[g].mean() for g in groups if len(g)]
        observed = [y[g].mean() for g in groups if len(g)]
        top = max(top, max(predicted), max(observed))
        brier = float(np.mean((np.asarray(score) - np.asarray(y)) ** 2))
        ax.plot(predicted, observed, marker="o", ms=3, color=COLORS.get(name), ls=LINESTYLES.get(name, "-"),
                lw=1.2, label=f"{_label(name)} (Brier {brier:.4f})")
    top = min(1.0, top * 1.1 + 0.01)
    ax.plot([0, top], [0, top], color="black", ls="--", lw=0.8, label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed spike rate", title=title,
           xlim=(0, top), ylim=(0, top))
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)


def fold_ratios(ax: Axes, labels: list[str], ratios: Mapping[str, list[float]], rates: list[float], title: str) -> None:
    """PR-AUC ratio to persistence per fold (bars per model), the fold's positive rate on a second axis."""
    x = np.arange(len(labels))
    width = 0.8 / max(len(ratios), 1)
    for i, (name, values) in enumerate(ratios.items()):
        ax.bar(x + (i - (len(ratios) - 1) / 2) * width, values, width, color=COLORS.get(name), label=_label(name))
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_xticks(x, labels, fontsize=7)
    top = max((v for values in ratios.values() for v in values if np.isfinite(v)), default=1.0)
    ax.set(ylabel="PR-AUC / persistence's", title=title, ylim=(0, top * 1.35))
    ax.legend(fontsize=7, loc="upper left", ncol=len(ratios))
    ax.grid(alpha=0.3, axis="y")
    twin = ax.twinx()
    twin.plot(x, rates, color="#d62728", marker="o", ms=3, lw=1, label="positive rate")
    twin.set_ylabel("positive rate", color="#d62728")
    twin.set_ylim(0, max(rates) * 1.3 if max(rates) > 0 else 1)


def confusion(ax: Axes, metrics: Mapping[str, float], title: str) -> None:
    """The 2x2 counts at the chosen threshold, with row shares."""
    cells = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]], dtype=float)
    shares = cells / np.maximum(cells.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{int(cells[i, j]):,}\n{shares[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks([0, 1], ["no alert", "alert"], fontsize=8)
    ax.set_yticks([0, 1], ["calm", "spike"], fontsize=8)
    ax.set_title(title, fontsize=9)


def importance(ax: Axes, values: Mapping[str, float], title: str) -> None:
    total = sum(values.values()) or 1.0
    items = sorted(values.items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in items], [v / total for _, v in items], color="#1f77b4")
    ax.set(xlabel="share of total importance", title=title)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3, axis="x")


def with_gaps(ts: pd.Series, values: np.ndarray, gap_s: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Insert NaN where the data has a gap so lines do not bridge missing time."""
    t = pd.to_datetime(ts).dt.tz_convert(None).to_numpy()
    v = np.asarray(values, dtype=float)
    if len(t) < 2:
        return t, v
    breaks = np.flatnonzero(np.diff(t) > np.timedelta64(int(gap_s * 1e9), "ns")) + 1
    return np.insert(t, breaks, t[breaks - 1]), np.insert(v, breaks, np.nan)


def score_over_time(
    ax: Axes, ts: pd.Series, score: np.ndarray, y: np.ndarray | None, threshold: float, title: str,
    label: str = "score", ylabel: str = "P(spike)", threshold_label: str = "alert threshold",
) -> None:
    """Score as a line, the alert threshold dashed, true spikes as red bands."""
    t, s = with_gaps(ts, score)
    if y is not None:
        tt = pd.to_datetime(ts).dt.tz_convert(None).to_numpy()
        ax.fill_between(tt, 0, 1, where=np.asarray(y) == 1, color="#d62728", alpha=0.25, lw=0,
                        step="post", transform=ax.get_xaxis_transform(), label="true spike (label = 1)")
    ax.plot(t, s, color="#1f77b4", lw=0.6, label=label)
    ax.axhline(threshold, color="black", ls="--", lw=0.8, label=f"{threshold_label} {threshold:.3g}")
    ax.set(ylabel=ylabel, title=title)
    ax.set_ylim(0, max(float(np.nanmax(s)) * 1.05, threshold * 1.2))
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    for tick in ax.get_xticklabels():
        tick.set_fontsize(7)
    ax.set_xlabel("time (UTC)")


def model_figures(name: str, y: np.ndarray, p: np.ndarray, imp: Mapping[str, float]) -> dict[str, Figure]:
    """The per-model plots logged to MLflow, on the walk-forward's out-of-sample predictions."""
    figs: dict[str, Figure] = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    pr_curves(axes[0], {name: (y, p)}, "walk-forward folds, pooled")
    calibration(axes[1], {name: (y, p)}, "reliability on the walk-forward folds")
    figs["pr_and_reliability.png"] = fig
    fig, ax = plt.subplots(figsize=(6, 4))
    importance(ax, imp, f"{_label(name)}: what drives the forecast")
    figs["feature_importance.png"] = fig
    for fig in figs.values():
        fig.tight_layout()
    return figs
