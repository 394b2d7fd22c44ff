"""Walk-forward evaluation across days: rolling origin, an embargo at every cut, a fixed candidate set.

The labeled rows (all products, in time order) are cut at row quantiles: the first
``initial_share`` only trains, the rest falls into ``folds`` consecutive blocks. Fold k is scored
by models fitted on everything before it::

    | train ............................ | embargo | validation | embargo | fold k | later rows unused |

tau (per product) comes from the train part; the probability map and the alert threshold of
the budget from the validation part; the fold itself is scored once. The headline is the
geometric mean over folds of each model's PR-AUC divided by persistence's (the forecast "next
minute looks like the last one"), with an interval from a bootstrap over UTC days: a day is
the unit that can differ (regime, session), and rows within one are strongly dependent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.data import TableError
from models.forecast import SpikeForecaster, build
from models.metrics import RankedScores, budget_threshold, evaluate, geometric_mean, interval

log = logging.getLogger(__name__)
REFERENCE = "persistence"


@dataclass(frozen=True)
class Parts:
    """Row positions (into the time-sorted labeled table) of one fit: train, validation, and what is scored."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray | None = None


@dataclass
class Fitted:
    """The candidates fitted on one train part, calibrated and thresholded on its validation part."""

    models: dict[str, SpikeForecaster]
    thresholds: dict[str, float]
    taus: dict[str, float]
    tau: float


def taus_from_train(train: pd.DataFrame, sigma_col: str, percentile: float) -> tuple[dict[str, float], float]:
    """tau per product (its own percentile of future volatility) and over all rows (for other products)."""
    if train.empty:
        raise TableError("the train part has no labeled rows to set tau from")
    per_product = train.groupby("product_id")[sigma_col].quantile(percentile / 100)
    return {str(p): float(v) for p, v in per_product.items()}, float(np.percentile(train[sigma_col], percentile))


def labels_for(part: pd.DataFrame, sigma_col: str, taus: dict[str, float], tau: float) -> np.ndarray:
    """0/1 spike labels of labeled rows, each against its product's tau (``tau`` for other products)."""
    row_tau = part["product_id"].map(taus).astype(float).fillna(tau).to_numpy()
    return (part[sigma_col].to_numpy(dtype=float) >= row_tau).astype(int)


def fit_candidates(table: pd.DataFrame, parts: Parts, families: tuple[str, ...], features: tuple[str, ...],
                   column: str, sigma_col: str, tau_percentile: float, budget: float) -> Fitted:
    """Fit every family on ``parts.train``; probability map and budget threshold on ``parts.validation``."""
    train, validation = table.iloc[parts.train], table.iloc[parts.validation]
    taus, tau = taus_from_train(train, sigma_col, tau_percentile)
    y_val = labels_for(validation, sigma_col, taus, tau)
    if y_val.sum() == 0:  # a calm stretch: probabilities fall back to the validation spike rate (near 0)
        log.warning("the validation part %s .. %s (%d rows) has no spike at the training tau",
                    validation["ts"].min(), validation["ts"].max(), len(validation))
    models, thresholds = {}, {}
    for family in families:
        model = build(family, features, column, taus, tau).fit(train, train[sigma_col])
        model.calibrate(validation, y_val)
        models[family] = model
        thresholds[family] = budget_threshold(model.predict_proba(validation)[:, 1], budget)
    return Fitted(models, thresholds, taus, tau)


def make_folds(ts: pd.Series, folds: int, initial_share: float, validation_share: float,
               embargo_s: float) -> list[Parts]:
    """The parts of every fold, as row positions into the time-sorted table ``ts`` belongs to."""
    t = ts.to_numpy("datetime64[ns]")
    n = len(t)
    embargo = np.timedelta64(int(embargo_s * 1e9), "ns")
    edges = [int(round(n * (initial_share + (1 - initial_share) * k / folds))) for k in range(folds + 1)]
    out = []
    for k in range(folds):
        test = np.arange(edges[k], edges[k + 1])
        if test.size == 0:
            raise TableError(f"{n} labeled rows are too few for {folds} walk-forward folds")
        history_end = int(np.searchsorted(t, t[test[0]] - embargo, side="left"))
        out.append(split_history(t, history_end, validation_share, embargo, test))
    return out


def split_history(t: np.ndarray, history_end: int, validation_share: float, embargo: np.timedelta64,
                  test: np.ndarray | None = None) -> Parts:
    """Train and validation parts of rows [0, history_end), validation last, an embargo between them."""
    v_start = int(round(history_end * (1 - validation_share)))
    if not 0 < v_start < history_end:
        raise TableError(f"{history_end} rows of history are too few to split into train and validation")
    validation = np.arange(int(np.searchsorted(t, t[v_start], side="left")), history_end)
    train = np.arange(int(np.searchsorted(t, t[validation[0]] - embargo, side="left")))
    if train.size == 0 or validation.size == 0:
        raise TableError("a train or validation part is empty after the embargo; use more data")
    return Parts(train, validation, test)


@dataclass
class WalkForward:
    """Per-fold metrics, the out-of-sample predictions of every fold, and the headline per family."""

    families: tuple[str, ...]
    folds: list[dict[str, Any]]
    predictions: pd.DataFrame  # one row per scored row: fold, product_id, ts, day, y, p_<family>, sigma_<family>
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def selected(self) -> str:
        """The family with the best geometric-mean PR-AUC ratio to persistence over the folds."""
        return max(self.families, key=lambda f: np.nan_to_num(self.summary[f]["gm_ratio"], nan=-1.0))


def walk_forward(table: pd.DataFrame, families: tuple[str, ...], features: tuple[str, ...], column: str,
                 sigma_col: str, tau_percentile: float, budget: float, folds: int, initial_share: float,
                 validation_share: float, embargo_s: float, draws: int = 1000, seed: int = 0) -> WalkForward:
    """Fit, calibrate and score every family on every fold of ``table`` (labeled rows sorted by time)."""
    if REFERENCE not in families:
        families = (REFERENCE, *families)
    plan = make_folds(table["ts"], folds, initial_share, validation_share, embargo_s)
    fold_rows, frames = [], []
    for k, parts in enumerate(plan):
        started = time.perf_counter()
        fitted = fit_candidates(table, parts, families, features, column, sigma_col, tau_percentile, budget)
        test = table.iloc[parts.test]
        y = labels_for(test, sigma_col, fitted.taus, fitted.tau)
        frame = pd.DataFrame({"fold": k, "product_id": test["product_id"].to_numpy(), "ts": test["ts"].to_numpy(),
                              "y": y})
        info: dict[str, Any] = {
            "fold": k, "train": _span(table.iloc[parts.train]), "validation": _span(table.iloc[parts.validation]),
            "test": _span(test), "taus": fitted.taus, "tau": fitted.tau, "positive_rate": float(y.mean()),
            "days": sorted(pd.to_datetime(test["ts"]).dt.strftime("%Y-%m-%d").unique().tolist()), "models": {},
        }
        for family, model in fitted.models.items():
            p = model.predict_proba(test)[:, 1]
            frame[f"p_{family}"] = p
            frame[f"sigma_{family}"] = model.sigma(test)
            metrics = evaluate(y, p, fitted.thresholds[family])
            metrics["threshold"] = fitted.thresholds[family]
            metrics["by_product"] = {
                str(prod): evaluate(y[mask], p[mask], fitted.thresholds[family])
                for prod in sorted(test["product_id"].unique()) if (mask := (test["product_id"] == prod).to_numpy()).any()
            }
            info["models"][family] = metrics
        info["seconds"] = time.perf_counter() - started
        log.info("fold %d (%s .. %s, %d rows, positive rate %.3f): %s", k, info["test"]["start"][:16],
                 info["test"]["end"][:16], len(test), y.mean(),
                 ", ".join(f"{f} {info['models'][f]['pr_auc']:.3f}" for f in families))
        fold_rows.append(info)
        frames.append(frame)
    predictions = pd.concat(frames, ignore_index=True)
    predictions["day"] = pd.to_datetime(predictions["ts"]).dt.strftime("%Y-%m-%d")
    result = WalkForward(tuple(families), fold_rows, predictions, settings={
        "folds": folds, "initial_share": initial_share, "validation_share": validation_share,
        "embargo_s": embargo_s, "alert_budget": budget, "tau_percentile": tau_percentile,
        "bootstrap_draws": draws, "reference": REFERENCE,
    })
    result.summary = summarize(result, draws, seed)
    return result


def _span(part: pd.DataFrame) -> dict[str, Any]:
    return {"start": part["ts"].min().isoformat(), "end": part["ts"].max().isoformat(), "rows": int(len(part))}


def summarize(wf: WalkForward, draws: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per family: geometric-mean ratio to persistence with its day-bootstrap interval, pooled alert
    figures, Brier, and the same ratio per product."""
    pred = wf.predictions
    ratios = {f: np.array([fold["models"][f]["pr_auc"] / fold["models"][REFERENCE]["pr_auc"] for fold in wf.folds])
              for f in wf.families}
    boot = day_bootstrap(pred, wf.families, draws, seed)
    out: dict[str, dict[str, Any]] = {}
    products = sorted(pred["product_id"].unique())
    for f in wf.families:
        alerts = np.concatenate([pred.loc[pred["fold"] == k, f"p_{f}"].to_numpy() >= fold["models"][f]["threshold"]
                                 for k, fold in enumerate(wf.folds)])
        y = pred["y"].to_numpy()
        p = pred[f"p_{f}"].to_numpy()
        pooled = evaluate(y, p, 0.5)
        tp = int((alerts & (y == 1)).sum())
        per_product = {}
        for prod in products:
            r = [fold["models"][f]["by_product"][prod]["pr_auc"] / fold["models"][REFERENCE]["by_product"][prod]["pr_auc"]
                 for fold in wf.folds if prod in fold["models"][f]["by_product"]]
            mask = (pred["product_id"] == prod).to_numpy()
            a = alerts[mask]
            per_product[prod] = {"gm_ratio": geometric_mean(np.array(r)), "fold_ratios": [float(x) for x in r],
                                 "positive_rate": float(y[mask].mean()), "alert_rate": float(a.mean()),
                                 "precision": float((a & (y[mask] == 1)).sum() / a.sum()) if a.sum() else float("nan"),
                                 "rows": int(mask.sum())}
        precision = tp / alerts.sum() if alerts.sum() else float("nan")
        out[f] = {
            "gm_ratio": geometric_mean(ratios[f]),
            "gm_ratio_ci90": interval(boot[f]),
            "folds_above_reference": int((ratios[f] > 1).sum()),
            "fold_ratios": [float(x) for x in ratios[f]],
            "fold_pr_auc": [float(fold["models"][f]["pr_auc"]) for fold in wf.folds],
            "alert_rate": float(alerts.mean()),
            "precision": float(precision),
            "precision_lift": float(precision / y.mean()) if y.mean() else float("nan"),
            "recall": float(tp / y.sum()) if y.sum() else float("nan"),
            "positive_rate": float(y.mean()),
            "brier": pooled["brier"],
            "brier_skill": pooled["brier_skill"],
            "by_product": per_product,
        }
    return out


def day_bootstrap(pred: pd.DataFrame, families: tuple[str, ...], draws: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Geometric-mean PR-AUC ratio to persistence over resamples of whole UTC days (the same for all families)."""
    if draws <= 0:
        return {f: np.array([]) for f in families}
    days = sorted(pred["day"].unique())
    day_index = pred["day"].map({d: i for i, d in enumerate(days)}).to_numpy()
    folds = sorted(pred["fold"].unique())
    ranked = {}
    for k in folds:
        rows = np.flatnonzero(pred["fold"].to_numpy() == k)
        y = pred["y"].to_numpy()[rows]
        ranked[k] = (rows, {f: RankedScores(y, pred[f"p_{f}"].to_numpy()[rows]) for f in families})
    rng = np.random.default_rng(seed)
    out = {f: np.empty(draws) for f in families}
    for b in range(draws):
        counts = np.bincount(rng.integers(0, len(days), len(days)), minlength=len(days)).astype(float)
        logs = {f: [] for f in families}
        for k in folds:
            rows, scorers = ranked[k]
            w = counts[day_index[rows]]
            if not w.any():
                continue
            ref = scorers[REFERENCE].average_precision(w)
            for f in families:
                ratio = scorers[f].average_precision(w) / ref
                if np.isfinite(ratio) and ratio > 0:
                    logs[f].append(np.log(ratio))
        for f in families:
            out[f][b] = np.exp(np.mean(logs[f])) if logs[f] else np.nan
    return out
