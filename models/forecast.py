"""Forecasts of next minute's volatility, and the spike probability derived from them.

Every candidate, the baselines included, is one ``SpikeForecaster``:

1. a point forecast ``mu(x)`` of ``log sigma_future`` (its conditional median): the current
   realized volatility for the baselines, a HAR-style ridge regression on the log volatilities
   for ``har``, monotone gradient boosting for ``gbm``;
2. a score ``z = (mu - log tau_p) / s``: how far above the spike threshold of the row's product
   the forecast is, in units of the training residuals' spread ``s`` (the z-score rule instead
   standardizes the current volatility with its product's training mean and deviation);
3. ``P(sigma >= tau_p) = expit(a z + b)`` with ``a > 0`` fitted on the validation part (Platt
   scaling), so probabilities are calibrated and the ranking is that of ``z``.

The forecast sigma ``exp(mu)`` does not depend on tau: users can apply their own threshold to
it. Rows carry their ``product_id`` when they can; a product the model has not seen (or a row
without one) is judged against the tau of all training rows.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBRegressor

log = logging.getLogger(__name__)

FAMILIES = ("persistence", "zscore", "har", "gbm")
BASELINES = ("persistence", "zscore")
LABELS = {
    "persistence": "Persistence (rv_60s: next minute like the last)",
    "zscore": "Z-score rule on rv_60s, per product",
    "har": "HAR-style ridge on log volatilities",
    "gbm": "Gradient boosting, monotone in volatility",
}
SIGMA_FLOOR = 1e-7  # the feature module's floor before logs: a minute without a mid move
MIN_SLOPE = 1e-6  # keeps the probability strictly increasing in the score
# Rows are autocorrelated (neighbours share most of their windows): demand many per leaf, keep trees shallow.
GBM_SETTINGS = dict(n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8, colsample_bytree=0.8,
                    min_child_weight=200, reg_lambda=1.0, tree_method="hist", n_jobs=1, random_state=0)


def log_sigma(sigma: pd.Series | np.ndarray) -> np.ndarray:
    """The regression target: log of the future volatility, floored like the features."""
    return np.log(np.maximum(np.asarray(sigma, dtype=float), SIGMA_FLOOR))


class SpikeForecaster(ClassifierMixin, BaseEstimator):
    """Forecast of log sigma_future, turned into P(sigma_future >= tau of the row's product).

    ``column`` is the baselines' input (the log realized volatility over the label horizon);
    ``taus`` maps product to tau, ``tau`` is the threshold for any other product.
    """

    def __init__(self, family: str = "har", features: tuple[str, ...] = (), column: str = "log_rv_60s",
                 taus: dict[str, float] | None = None, tau: float = 1.0, alpha: float = 1.0) -> None:
        self.family = family
        self.features = features
        self.column = column
        self.taus = taus
        self.tau = tau
        self.alpha = alpha

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, sigma: pd.Series | np.ndarray) -> "SpikeForecaster":
        """Fit the point forecast on training rows (``sigma``: their future volatility)."""
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}; known: {', '.join(FAMILIES)}")
        y = log_sigma(sigma)
        self.classes_ = np.array([0, 1])
        self.regressor_: Any = None
        raw = np.asarray(X[self.column], dtype=float)
        self.fill_ = float(np.nanmedian(raw))  # the first ticks of a segment have no volatility yet
        if self.family == "har":
            self.regressor_ = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()),
                                        ("ridge", Ridge(alpha=self.alpha))]).fit(self._matrix(X), y)
        elif self.family == "gbm":
            monotone = tuple(int("rv_" in f) for f in self.features)  # more volatility now, never less later
            self.regressor_ = XGBRegressor(monotone_constraints=monotone, **GBM_SETTINGS).fit(self._matrix(X), y)
        self.offset_ = 0.0
        residual = y - self._mu(X)
        self.offset_ = float(np.median(residual))  # mu becomes the conditional median
        self.scale_ = float(np.std(residual - self.offset_)) or 1.0
        if self.family == "zscore":
            v = self._baseline_input(X)
            products = self._products(X)
            stats = pd.DataFrame({"p": products, "v": v}).groupby("p")["v"].agg(["mean", "std"])
            self.z_stats_ = {str(p): (float(m), float(s) if s > 0 else 1.0) for p, (m, s) in stats.iterrows()}
            self.z_default_ = (float(v.mean()), float(v.std()) or 1.0)
        self.slope_, self.intercept_ = 1.0, 0.0  # until calibrate(): P = expit(z)
        return self

    def calibrate(self, X: pd.DataFrame, y: np.ndarray) -> "SpikeForecaster":
        """Fit the probability map on validation rows (0/1 spike labels); it keeps the ranking."""
        z = self.score(X)
        y = np.asarray(y, dtype=int)
        if 0 < y.sum() < len(y):
            platt = LogisticRegression(C=1e6).fit(z[:, None], y)
            self.slope_, self.intercept_ = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        else:
            self.slope_ = 0.0
        if self.slope_ < MIN_SLOPE:
            log.warning("%s: on validation rows a higher score did not mean more spikes; its probability is "
                        "the validation spike rate", self.family)
            rate = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
            self.slope_, self.intercept_ = MIN_SLOPE, float(logit(rate))
        return self

    # -- scoring ---------------------------------------------------------------------------

    def _matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.loc[:, list(self.features)].astype(float)

    def _baseline_input(self, X: pd.DataFrame) -> np.ndarray:
        v = np.asarray(X[self.column], dtype=float)
        return np.where(np.isnan(v), self.fill_, v)

    @staticmethod
    def _products(X: pd.DataFrame) -> np.ndarray:
        if "product_id" in X.columns:
            return X["product_id"].astype(object).where(X["product_id"].notna(), "").to_numpy()
        return np.full(len(X), "", dtype=object)

    def _mu(self, X: pd.DataFrame) -> np.ndarray:
        if self.regressor_ is None:
            mu = self._baseline_input(X)
        else:
            mu = np.asarray(self.regressor_.predict(self._matrix(X)), dtype=float)
        return mu + self.offset_

    def log_tau(self, X: pd.DataFrame) -> np.ndarray:
        """log tau of each row's product (the tau of all training rows for an unknown product)."""
        taus = self.taus or {}
        return np.log(np.array([taus.get(p, self.tau) for p in self._products(X)], dtype=float))

    def sigma(self, X: pd.DataFrame) -> np.ndarray:
        """Forecast of sigma_future (its conditional median), whatever tau; at most 1 (100 % a tick), so
        absurd inputs give a finite, recognisable ceiling rather than an overflow."""
        return np.exp(np.clip(self._mu(X), np.log(SIGMA_FLOOR), 0.0))

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """The ranking score z (see the module docstring)."""
        if self.family == "zscore":
            products = self._products(X)
            stats = np.array([self.z_stats_.get(p, self.z_default_) for p in products], dtype=float).reshape(-1, 2)
            return (self._baseline_input(X) - stats[:, 0]) / stats[:, 1]
        return (self._mu(X) - self.log_tau(X)) / self.scale_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = expit(self.slope_ * self.score(X) + self.intercept_)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def build(family: str, features: tuple[str, ...], column: str, taus: dict[str, float], tau: float) -> SpikeForecaster:
    """An unfitted candidate of ``family``; its settings are fixed here, before any evaluation."""
    return SpikeForecaster(family=family, features=tuple(features), column=column, taus=dict(taus), tau=tau)


def importance(model: SpikeForecaster) -> dict[str, float]:
    """How much each input drives the forecast: |coefficient| on standardized inputs, boosting gain."""
    if model.family in BASELINES:
        return {f: float(f == model.column) for f in model.features}
    if model.family == "har":
        coef = np.abs(model.regressor_.named_steps["ridge"].coef_)
        return dict(zip(model.features, map(float, coef)))
    gain = model.regressor_.get_booster().get_score(importance_type="gain")
    return {f: float(gain.get(f, 0.0)) for f in model.features}
