"""Training: walk-forward across days for the verdict and the choice, then the models that are served.

1. ``walk_forward`` scores every candidate on every fold (models/walkforward.py); the family
   with the best geometric-mean PR-AUC ratio to persistence is the one selected.
2. The served models are fitted the same way on all the rows given: the last
   ``validation_share`` of them (after an embargo) is the validation part, which sets the
   probability map and the alert threshold of the budget; tau per product comes from the rest.

Their expected alert rate and precision are the walk-forward figures (thresholds chosen on
each fold's validation part, then applied to the fold), not the validation part's own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.data import TableError, time_range
from models.forecast import SpikeForecaster, importance
from models.metrics import evaluate
from models.walkforward import WalkForward, fit_candidates, labels_for, split_history, walk_forward

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainingSettings:
    """Everything that defines a training run besides the rows."""

    families: tuple[str, ...]
    features: tuple[str, ...]
    sigma_col: str
    horizon_s: float
    tau_percentile: float
    alert_budget: float
    folds: int
    initial_share: float
    validation_share: float
    embargo_s: float
    bootstrap_draws: int = 1000

    @property
    def column(self) -> str:
        """The baselines' input: the log realized volatility over the label horizon."""
        return f"log_rv_{self.horizon_s:g}s"


@dataclass
class ModelResult:
    """One served candidate: its estimator, threshold, validation metrics and walk-forward figures."""

    name: str
    estimator: SpikeForecaster
    threshold: float
    threshold_rule: str
    metrics: dict[str, float]
    validation_scores: np.ndarray
    importance: dict[str, float]
    walk_forward: dict[str, Any]


@dataclass
class TrainingResult:
    settings: TrainingSettings
    taus: dict[str, float]
    tau: float
    parts: dict[str, pd.DataFrame]
    validation_labels: np.ndarray
    walk: WalkForward
    models: dict[str, ModelResult] = field(default_factory=dict)
    selected: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def ranges(self) -> dict[str, dict[str, object]]:
        return {name: time_range(part) for name, part in self.parts.items()}


def check_settings(s: TrainingSettings) -> None:
    """Settings that cannot give a meaningful run are refused with what to change."""
    if not 0 < s.alert_budget < 1:
        raise TableError(f"--alert-budget must be between 0 and 1, got {s.alert_budget}")
    if s.folds < 2:
        raise TableError(f"folds must be at least 2 (a walk-forward across days), got {s.folds}")
    if s.bootstrap_draws < 0:
        raise TableError(f"--draws must not be negative, got {s.bootstrap_draws}")
    if s.embargo_s < s.horizon_s:
        raise TableError(f"the embargo ({s.embargo_s:g} s) must be at least the label horizon ({s.horizon_s:g} s)")
    if s.column not in s.features:
        raise TableError(f"the baselines need {s.column}: add {s.horizon_s:g} to features.windows_s")


def train_models(labeled: pd.DataFrame, s: TrainingSettings) -> TrainingResult:
    """Walk-forward over ``labeled`` (rows with a known future volatility), then fit the served models."""
    check_settings(s)
    table = labeled.sort_values("ts", kind="stable").reset_index(drop=True)
    started = time.perf_counter()
    walk = walk_forward(table, s.families, s.features, s.column, s.sigma_col, s.tau_percentile, s.alert_budget,
                        s.folds, s.initial_share, s.validation_share, s.embargo_s, draws=s.bootstrap_draws)
    walk_seconds = time.perf_counter() - started
    started = time.perf_counter()
    embargo = np.timedelta64(int(s.embargo_s * 1e9), "ns")
    parts = split_history(table["ts"].to_numpy("datetime64[ns]"), len(table), s.validation_share, embargo)
    fitted = fit_candidates(table, parts, walk.families, s.features, s.column, s.sigma_col, s.tau_percentile,
                            s.alert_budget)
    train, validation = table.iloc[parts.train].reset_index(drop=True), table.iloc[parts.validation].reset_index(drop=True)
    y_val = labels_for(validation, s.sigma_col, fitted.taus, fitted.tau)
    result = TrainingResult(settings=s, taus=fitted.taus, tau=fitted.tau,
                            parts={"train": train, "validation": validation}, validation_labels=y_val, walk=walk)
    for name, model in fitted.models.items():
        p = model.predict_proba(validation)[:, 1]
        threshold = fitted.thresholds[name]
        result.models[name] = ModelResult(
            name=name, estimator=model, threshold=threshold,
            threshold_rule=(f"alert on the top {s.alert_budget:.0%} of validation rows "
                            f"(probability >= {threshold:.4f}); never max-F1"),
            metrics=evaluate(y_val, p, threshold), validation_scores=p, importance=importance(model),
            walk_forward=walk.summary[name],
        )
    result.selected = walk.selected
    result.seconds = {"walk_forward": walk_seconds, "final_fit": time.perf_counter() - started}
    log.info("selected %s: walk-forward PR-AUC %.2fx persistence", result.selected,
             walk.summary[result.selected]["gm_ratio"])
    return result
