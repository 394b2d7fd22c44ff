"""The two baselines every model must beat, as small scikit-learn style classifiers.

Both rank rows by the current 60 s realized volatility (``rv_60s``), so they have the same
PR-AUC and ROC-AUC; they differ in where they cut:

* persistence forecasts next minute's volatility as this minute's and calls a spike when
  ``rv_60s >= tau`` -- there is nothing to choose, the cut is the label's own threshold;
* the z-score rule standardizes ``rv_60s`` with the training mean and standard deviation and
  alerts when ``z >= z*``, with ``z*`` chosen on validation like every other model's cut.

Each maps its score to a probability with a one-feature logistic fit on the training rows
(Platt scaling). The map is kept increasing, so it changes neither the ranking by ``rv_60s``
nor the decisions; it only makes the Brier score and the calibration plot meaningful. Where
the training rows show no increasing relation, the best increasing map is (almost) flat: the
spike rate of the training rows, with a vanishing slope that keeps the order of ``rv_60s``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)

MIN_SLOPE = 1e-6  # keeps the probability strictly increasing in rv_60s


class RvScoreBaseline(ClassifierMixin, BaseEstimator):
    """Score = z of the current realized volatility; probability via Platt scaling."""

    def __init__(self, column: str = "rv_60s") -> None:
        self.column = column

    def _values(self, X: pd.DataFrame) -> np.ndarray:
        v = np.asarray(X[self.column], dtype=float)
        return np.where(np.isnan(v), self.fill_, v)  # segment starts have no volatility yet

    def zscore(self, X: pd.DataFrame) -> np.ndarray:
        """(rv - training mean) / training std; missing values take the training median."""
        return (self._values(X) - self.mean_) / self.std_

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "RvScoreBaseline":
        raw = np.asarray(X[self.column], dtype=float)
        self.fill_ = float(np.nanmedian(raw))
        values = np.where(np.isnan(raw), self.fill_, raw)
        self.mean_ = float(values.mean())
        self.std_ = float(values.std()) or 1.0
        platt = LogisticRegression().fit(((values - self.mean_) / self.std_)[:, None], y)
        self.slope_, self.intercept_ = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        if self.slope_ < MIN_SLOPE:
            log.warning("%s: on training rows a higher %s did not mean more spikes; its probability "
                        "is the training spike rate", type(self).__name__, self.column)
            self.slope_, self.intercept_ = MIN_SLOPE, float(logit(np.mean(y)))
        self.classes_ = np.array([0, 1])
        return self

    def probability_at_z(self, z: float) -> float:
        return float(expit(self.slope_ * z + self.intercept_))

    def z_at_probability(self, p: float) -> float:
        """Inverse of the Platt map, to state a probability cut in z units."""
        return float((logit(min(max(p, 1e-12), 1 - 1e-12)) - self.intercept_) / self.slope_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = expit(self.slope_ * self.zscore(X) + self.intercept_)
        return np.column_stack([1 - p, p])

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.zscore(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class PersistenceBaseline(RvScoreBaseline):
    """Next minute looks like the last one: spike when ``rv_60s >= tau``."""

    def __init__(self, column: str = "rv_60s", tau: float = 0.0) -> None:
        super().__init__(column)
        self.tau = tau

    def fixed_threshold(self) -> float:
        """The probability cut equivalent to ``rv_60s >= tau``."""
        return self.probability_at_z((self.tau - self.mean_) / self.std_)


class ZScoreRule(RvScoreBaseline):
    """Alert when the standardized ``rv_60s`` reaches a cut chosen on validation."""
