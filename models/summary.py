"""What a training run is written down as: each model's metadata, the run's summary, the verdict.

The same dictionaries feed the local artifacts, the MLflow model metadata, the API's /version,
the evaluation PDF and the model card, so every report quotes the same figures.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from models.artifacts import MODEL_FILE
from models.forecast import BASELINES, LABELS
from models.training import ModelResult, TrainingResult
from models.walkforward import REFERENCE


def expected_alerts(walk_summary: dict[str, Any], budget: float) -> dict[str, Any]:
    """What an operator should expect from a model's alerts: the walk-forward figures at the budget."""
    return {
        "budget": budget,
        "alert_rate": walk_summary["alert_rate"],
        "precision": walk_summary["precision"],
        "positive_rate": walk_summary["positive_rate"],
        "precision_lift": walk_summary["precision_lift"],
        "recall": walk_summary["recall"],
        "source": "walk-forward across days: threshold chosen on each fold's validation part, applied to the fold",
    }


def model_meta(result: TrainingResult, model: ModelResult, data: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to use ``model`` correctly later, as JSON-friendly values."""
    s = result.settings
    return {
        "name": model.name,
        "label": LABELS.get(model.name, model.name),
        "model_file": MODEL_FILE,
        "features": list(s.features),
        "baseline_input": s.column,
        "taus": result.taus,
        "tau": result.tau,
        "tau_percentile": s.tau_percentile,
        "tau_rule": f"per product: its {s.tau_percentile:g}th percentile of {s.sigma_col} on the train part; "
                    "other products: the percentile over all train rows",
        "horizon_s": s.horizon_s,
        "label_rule": f"{s.sigma_col} >= tau of the row's product",
        "threshold": model.threshold,
        "threshold_rule": model.threshold_rule,
        "alert_budget": s.alert_budget,
        "expected_alerts": expected_alerts(model.walk_forward, s.alert_budget),
        "walk_forward": {k: v for k, v in model.walk_forward.items() if k != "by_product"},
        "selected": model.name == result.selected,
        "data": {**data, "split": result.ranges(), "embargo_s": s.embargo_s, "validation_share": s.validation_share},
        "metrics": {"validation": model.metrics},
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "scikit-learn": version("scikit-learn"),
                     "xgboost": installed_version("xgboost-cpu", "xgboost"), "skops": version("skops")},
    }


def installed_version(*distributions: str) -> str:
    """Version of the first of ``distributions`` installed (xgboost-cpu on Linux, xgboost elsewhere)."""
    for name in distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    raise PackageNotFoundError(" or ".join(distributions))


def run_summary(result: TrainingResult, data: dict[str, Any]) -> dict[str, Any]:
    """The run at a glance: tau, parts, the walk-forward per fold and per family, the served models."""
    s = result.settings
    walk = result.walk
    return {
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data,
        "features": list(s.features),
        "sigma_column": s.sigma_col,
        "horizon_s": s.horizon_s,
        "tau_percentile": s.tau_percentile,
        "taus": result.taus,
        "tau": result.tau,
        "alert_budget": s.alert_budget,
        "split": result.ranges(),
        "embargo_s": s.embargo_s,
        "validation_share": s.validation_share,
        "selected": result.selected,
        "selection_rule": f"highest walk-forward geometric-mean PR-AUC ratio to {REFERENCE}",
        "walk_forward": {"settings": walk.settings, "families": list(walk.families), "folds": walk.folds,
                         "summary": walk.summary},
        "models": {
            name: {
                "label": LABELS.get(name, name),
                "threshold": m.threshold,
                "threshold_rule": m.threshold_rule,
                "metrics": {"validation": m.metrics},
                "expected_alerts": expected_alerts(m.walk_forward, s.alert_budget),
                "importance": m.importance,
            }
            for name, m in result.models.items()
        },
        "seconds": result.seconds,
    }


def _fmt_ci(ci: list | tuple) -> str:
    lo, hi = ci
    return "n/a" if not (np.isfinite(lo) and np.isfinite(hi)) else f"{lo:.2f} to {hi:.2f}"


def verdict(summary: dict[str, Any]) -> list[str]:
    """Plain sentences, headline first: the walk-forward across days, then the alerts at the budget."""
    wf = summary["walk_forward"]
    sel = summary["selected"]
    fam = wf["summary"][sel]
    folds = wf["folds"]
    days = sorted({d for f in folds for d in f["days"]})
    across = f"{len(days)} day{'s' if len(days) != 1 else ''}"
    rates = [f["positive_rate"] for f in folds]
    lines = []
    ratio, ci = fam["gm_ratio"], fam["gm_ratio_ci90"]
    if sel == REFERENCE:
        head = (f"Walk-forward across {across} ({days[0]} to {days[-1]}, {len(folds)} folds): no candidate "
                f"ranks next-minute spikes better than persistence; persistence is served.")
    else:
        beats = ratio > 1
        head = (f"Walk-forward across {across} ({days[0]} to {days[-1]}, {len(folds)} folds): "
                f"{LABELS.get(sel, sel)} ranks next-minute spikes {ratio:.2f}x as well as persistence "
                f"(geometric mean of the PR-AUC ratios; 90 % day-bootstrap interval {_fmt_ci(ci)}), "
                f"{'above' if beats else 'NOT above'} it in {fam['folds_above_reference']} of {len(folds)} folds.")
        if beats and np.isfinite(ci[0]) and ci[0] <= 1:
            head += " The interval reaches 1: these days cannot rule out that it is no better."
    lines.append(head + f" Positive rate per fold: {min(rates):.3f} to {max(rates):.3f}.")
    lines.append(
        f"Alerts at the budget (the top {summary['alert_budget']:.0%} of validation rows): on the folds they fired on "
        f"{fam['alert_rate']:.1%} of rows with precision {fam['precision']:.3f}, {fam['precision_lift']:.1f}x the "
        f"positive rate ({fam['positive_rate']:.3f}), and caught {fam['recall']:.0%} of spike rows."
        + (" The alert rate exceeds the budget because later folds were more volatile than the validation parts."
           if fam["alert_rate"] > 1.5 * summary["alert_budget"] else ""))
    lines.append(f"Probabilities: Brier score {fam['brier']:.4f}, skill {fam['brier_skill']:+.2f} against always "
                 "predicting the positive rate (above 0 is better).")
    others = [f for f in wf["families"] if f not in (sel, REFERENCE)]
    if others:
        lines.append("Other candidates: " + "; ".join(
            f"{LABELS.get(f, f)} {wf['summary'][f]['gm_ratio']:.2f}x ({_fmt_ci(wf['summary'][f]['gm_ratio_ci90'])})"
            for f in others) + ".")
    return lines


def product_lines(summary: dict[str, Any]) -> list[str]:
    """The selected model's walk-forward figures per product."""
    sel = summary["selected"]
    rows = summary["walk_forward"]["summary"][sel]["by_product"]
    return [f"{p}: {v['gm_ratio']:.2f}x persistence, positive rate {v['positive_rate']:.3f}, alerts on "
            f"{v['alert_rate']:.1%} of rows at precision {v['precision']:.3f}" for p, v in rows.items()]


def is_baseline(name: str) -> bool:
    return name in BASELINES
