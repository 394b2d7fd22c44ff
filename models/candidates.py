"""The model families and the few fixed settings tried for each (chosen on validation only).

Missing values (every window's first ticks after a segment start have no volatility yet) are
handled inside each model: the logistic regression imputes the training median before
standardizing; XGBoost learns a default branch for missing values at every split.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from models.baselines import PersistenceBaseline, ZScoreRule

FAMILIES = ("persistence", "zscore", "logreg", "xgboost")
BASELINES = ("persistence", "zscore")
LABELS = {
    "persistence": "Persistence (rv_60s >= tau)",
    "zscore": "Z-score rule on rv_60s",
    "logreg": "Logistic regression",
    "xgboost": "XGBoost",
}

# Settings tried per family; the one with the best validation PR-AUC is kept.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "persistence": [{"column": "rv_60s"}],
    "zscore": [{"column": "rv_60s"}],
    "logreg": [{"C": 0.01}, {"C": 0.1}, {"C": 1.0}],
    "xgboost": [
        {"max_depth": 2, "n_estimators": 200, "learning_rate": 0.05},
        {"max_depth": 3, "n_estimators": 300, "learning_rate": 0.05},
        {"max_depth": 5, "n_estimators": 300, "learning_rate": 0.05},
    ],
}
XGB_FIXED = {
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 20,  # rows are autocorrelated: demand many of them per leaf
    "reg_lambda": 1.0,
    "tree_method": "hist",
    "n_jobs": 1,  # two OpenMP threads on a busy 2-core machine ran 20x slower
    "random_state": 0,
}


def build(family: str, params: dict[str, Any], tau: float) -> Any:
    """An unfitted estimator of ``family`` with ``params`` (predict_proba on a DataFrame)."""
    builders: dict[str, Callable[[], Any]] = {
        "persistence": lambda: PersistenceBaseline(tau=tau, **params),
        "zscore": lambda: ZScoreRule(**params),
        "logreg": lambda: Pipeline(
            [
                ("impute", SimpleImputer(strategy="median")),
                ("scale", StandardScaler()),
                ("clf", LogisticRegression(max_iter=2000, **params)),
            ]
        ),
        "xgboost": lambda: XGBClassifier(eval_metric="aucpr", **XGB_FIXED, **params),
    }
    return builders[family]()


def importance(family: str, estimator: Any, features: tuple[str, ...]) -> dict[str, float]:
    """How much each input drives the model: |coefficient| on standardized inputs, XGBoost gain."""
    if family in BASELINES:
        return {f: float(f == estimator.column) for f in features}
    if family == "logreg":
        coef = np.abs(estimator.named_steps["clf"].coef_[0])
        return dict(zip(features, map(float, coef)))
    gain = estimator.get_booster().get_score(importance_type="gain")
    return {f: float(gain.get(f, 0.0)) for f in features}
