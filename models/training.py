"""Fit every model family on the train part, choose cuts on validation, score validation and test.

The test part is only ever scored: settings, thresholds and the model to register are all
chosen on validation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.labels import spike_label
from models.candidates import BASELINES, FAMILIES, GRIDS, build, importance
from models.data import TableError
from models.metrics import block_bootstrap_pr_auc, choose_threshold, evaluate, interval, time_blocks
from models.split import PART_NAMES, TimeSplit, tau_from_train, time_split

log = logging.getLogger(__name__)


@dataclass
class ModelResult:
    """One fitted family: its estimator, cut, metrics per part and the settings it tried."""

    name: str
    estimator: Any
    params: dict[str, Any]
    threshold: float
    threshold_rule: str
    metrics: dict[str, dict[str, float]]
    scores: dict[str, np.ndarray]
    candidates: list[dict[str, Any]]
    importance: dict[str, float]
    fit_seconds: float


@dataclass
class TrainingResult:
    """Everything a run produced, before anything is written or logged."""

    features: tuple[str, ...]
    sigma_col: str
    horizon_s: float
    tau_percentile: float
    tau: float
    split: TimeSplit
    fractions: tuple[float, float, float]
    labels: dict[str, np.ndarray]
    models: dict[str, ModelResult] = field(default_factory=dict)
    best: str = ""


def make_labels(part: pd.DataFrame, sigma_col: str, tau: float) -> np.ndarray:
    """0/1 spike labels of a part whose rows all have a future volatility."""
    return spike_label(part[sigma_col], tau).to_numpy(dtype=int)


def check_classes(labels: dict[str, np.ndarray], sigma_col: str, tau: float) -> None:
    """Every part needs spikes and calm rows, or its metrics mean nothing."""
    for name, y in labels.items():
        if y.sum() == 0:
            raise TableError(
                f"the {name} part has no spikes ({sigma_col} >= tau = {tau:.3g}); "
                "use more data or a lower label.tau_percentile"
            )
        if y.sum() == len(y):
            raise TableError(f"every row of the {name} part is a spike (tau = {tau:.3g}); use more data")


def train_models(
    labeled: pd.DataFrame,
    features: tuple[str, ...],
    sigma_col: str,
    horizon_s: float,
    tau_percentile: float,
    embargo_s: float,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    families: tuple[str, ...] = FAMILIES,
) -> TrainingResult:
    """Split, set tau on train, fit each family's candidates and keep the best on validation."""
    if embargo_s < horizon_s:
        raise TableError(f"the embargo ({embargo_s:g} s) must be at least the label horizon ({horizon_s:g} s)")
    split = time_split(labeled, fractions, embargo_s)
    tau = tau_from_train(split.parts["train"][sigma_col], tau_percentile)
    labels = {name: make_labels(split.parts[name], sigma_col, tau) for name in PART_NAMES}
    check_classes(labels, sigma_col, tau)
    result = TrainingResult(
        features=tuple(features), sigma_col=sigma_col, horizon_s=horizon_s,
        tau_percentile=tau_percentile, tau=tau, split=split, fractions=fractions, labels=labels,
    )
    X = {name: split.parts[name].loc[:, list(features)].astype(float) for name in PART_NAMES}
    for family in families:
        result.models[family] = _fit_family(family, X, labels, tau, tuple(features))
        m = result.models[family]
        log.info(
            "%-11s validation PR-AUC %.3f (positive rate %.3f), test PR-AUC %.3f (positive rate %.3f), %.1f s",
            family, m.metrics["validation"]["pr_auc"], m.metrics["validation"]["positive_rate"],
            m.metrics["test"]["pr_auc"], m.metrics["test"]["positive_rate"], m.fit_seconds,
        )
    result.best = max(result.models, key=lambda k: result.models[k].metrics["validation"]["pr_auc"])
    return result


def _fit_family(
    family: str, X: dict[str, pd.DataFrame], labels: dict[str, np.ndarray], tau: float, features: tuple[str, ...]
) -> ModelResult:
    start = time.perf_counter()
    tried = []
    best: tuple[float, dict[str, Any], Any] | None = None
    for params in GRIDS[family]:
        estimator = build(family, params, tau).fit(X["train"], labels["train"])
        val_score = estimator.predict_proba(X["validation"])[:, 1]
        pr_auc = evaluate(labels["validation"], val_score, 0.5)["pr_auc"]
        tried.append({**params, "validation_pr_auc": pr_auc})
        if best is None or pr_auc > best[0]:
            best = (pr_auc, params, estimator)
    assert best is not None
    _, params, estimator = best
    scores = {name: estimator.predict_proba(X[name])[:, 1] for name in X}
    if family == "persistence":
        threshold = estimator.fixed_threshold()
        rule = f"rv_60s >= tau (probability >= {threshold:.4f}); nothing chosen"
    else:
        threshold = choose_threshold(labels["validation"], scores["validation"])
        rule = f"max F1 on validation (probability >= {threshold:.4f})"
        if family in BASELINES:
            rule += f"; z >= {estimator.z_at_probability(threshold):.2f}"
    metrics = {name: evaluate(labels[name], scores[name], threshold) for name in X}
    return ModelResult(
        name=family, estimator=estimator, params=params, threshold=threshold, threshold_rule=rule,
        metrics=metrics, scores=scores, candidates=tried,
        importance=importance(family, estimator, features), fit_seconds=time.perf_counter() - start,
    )


def compare_to_baselines(
    result: TrainingResult, part: str = "test", block_s: float = 120.0, draws: int = 200
) -> dict[str, Any]:
    """Each model's PR-AUC on ``part`` with a block-bootstrap interval, and each ML model's
    margin over the stronger baseline (paired: the same resamples for both)."""
    y = result.labels[part]
    blocks = time_blocks(result.split.parts[part]["ts"], block_s)
    scores = {name: m.scores[part] for name, m in result.models.items()}
    boot = block_bootstrap_pr_auc(y, scores, blocks, draws)
    point = {name: m.metrics[part]["pr_auc"] for name, m in result.models.items()}
    baselines = [n for n in result.models if n in BASELINES]
    out: dict[str, Any] = {"part": part, "block_s": block_s, "blocks": int(len(np.unique(blocks))),
                           "draws": int(len(next(iter(boot.values())))), "models": {}}
    ref = max(baselines, key=point.__getitem__) if baselines else None
    out["reference_baseline"] = ref
    for name in result.models:
        entry: dict[str, Any] = {"pr_auc": point[name], "ci90": interval(boot[name])}
        if ref is not None and name not in BASELINES:
            entry["margin"] = point[name] - point[ref]
            entry["margin_ci90"] = interval(boot[name] - boot[ref])
            entry["beats_both_baselines"] = all(point[name] > point[b] for b in baselines)
        out["models"][name] = entry
    return out
