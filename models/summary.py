"""What a training run is written down as: each model's metadata and the run's summary.

The same dictionaries feed the local artifacts, the MLflow model metadata, the evaluation PDF
and the model card, so every report quotes the same figures.
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from models.artifacts import MODEL_FILE
from models.candidates import BASELINES, LABELS
from models.training import ModelResult, TrainingResult


def model_meta(result: TrainingResult, model: ModelResult, data: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to use ``model`` correctly later, as JSON-friendly values."""
    return {
        "name": model.name,
        "label": LABELS.get(model.name, model.name),
        "model_file": MODEL_FILE,
        "features": list(result.features),
        "tau": result.tau,
        "tau_percentile": result.tau_percentile,
        "horizon_s": result.horizon_s,
        "label_rule": f"{result.sigma_col} >= tau",
        "threshold": model.threshold,
        "threshold_rule": model.threshold_rule,
        "params": model.params,
        "data": {**data, "split": result.split.ranges(), "embargo_s": result.split.embargo_s,
                 "split_fractions": list(result.fractions), "boundaries": result.split.boundaries},
        "metrics": model.metrics,
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


def run_summary(
    result: TrainingResult, data: dict[str, Any], comparison: dict[str, Any], train_seconds: float
) -> dict[str, Any]:
    """The run at a glance: tau, split, every model's metrics, the selection and the comparison."""
    return {
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data,
        "features": list(result.features),
        "sigma_column": result.sigma_col,
        "horizon_s": result.horizon_s,
        "tau_percentile": result.tau_percentile,
        "tau": result.tau,
        "split": result.split.ranges(),
        "split_fractions": list(result.fractions),
        "embargo_s": result.split.embargo_s,
        "rows_dropped_by_embargo": result.split.dropped_by_embargo,
        "selected": result.best,
        "selection_rule": "highest validation PR-AUC",
        "models": {
            name: {
                "label": LABELS.get(name, name),
                "params": m.params,
                "threshold": m.threshold,
                "threshold_rule": m.threshold_rule,
                "metrics": m.metrics,
                "candidates": m.candidates,
                "importance": m.importance,
                "fit_seconds": m.fit_seconds,
            }
            for name, m in result.models.items()
        },
        "comparison": comparison,
        "train_seconds": train_seconds,
    }


def verdict(summary: dict[str, Any]) -> list[str]:
    """Plain sentences: do the models beat the baselines, and chance, on test PR-AUC?"""
    comp = summary["comparison"]
    models = summary["models"]
    lines = []
    baselines = [n for n in models if n in BASELINES]
    if not baselines:
        return ["No baseline was trained, so no model can be compared with one."]
    test = {n: models[n]["metrics"]["test"] for n in models}
    rate = test[baselines[0]]["positive_rate"]
    base_txt = " and ".join(f"{LABELS[b]} {test[b]['pr_auc']:.3f}" for b in baselines)
    for name, entry in comp["models"].items():
        if name in BASELINES:
            continue
        lo, hi = entry["margin_ci90"]
        tag = " (the selected model)" if name == summary["selected"] else ""
        head = (f"{LABELS[name]}{tag} {'beats' if entry['beats_both_baselines'] else 'does NOT beat'} both baselines "
                f"on test PR-AUC: {entry['pr_auc']:.3f} against {base_txt} (positive rate {rate:.3f}; margin "
                f"{entry['margin']:+.3f}, 90 % interval {lo:+.3f} to {hi:+.3f})")
        if not entry["beats_both_baselines"]:
            lines.append(head + ".")
        elif lo > 0:
            lines.append(head + ", and the interval of the margin excludes zero.")
        else:
            lines.append(head + ", but the interval of the margin includes zero: the test part cannot tell them apart.")
    at_chance = [n for n, e in comp["models"].items() if e["ci90"][0] <= rate <= e["ci90"][1]]
    if at_chance:
        lines.append(
            "Not distinguishable from a random ranking on test (the 90 % interval of PR-AUC contains the positive "
            f"rate {rate:.3f}): " + "; ".join(
                f"{LABELS[n]} {test[n]['pr_auc']:.3f} ({comp['models'][n]['ci90'][0]:.3f} to "
                f"{comp['models'][n]['ci90'][1]:.3f}), ROC-AUC {test[n]['roc_auc']:.3f}" for n in at_chance) + "."
        )
    best_test = max(models, key=lambda n: test[n]["pr_auc"])
    selected = summary["selected"]
    if best_test != selected:
        lines.append(
            f"The selected model ({LABELS[selected]}) was chosen on validation PR-AUC "
            f"({models[selected]['metrics']['validation']['pr_auc']:.3f} against "
            f"{models[best_test]['metrics']['validation']['pr_auc']:.3f} for {LABELS[best_test]}), but on test "
            f"{LABELS[best_test]} scores higher ({test[best_test]['pr_auc']:.3f} against {test[selected]['pr_auc']:.3f}). "
            "The selection stands: switching after seeing test would make test a second validation part."
        )
    return lines


def other_day_verdict(other: dict[str, Any], selected: str) -> list[str]:
    """Plain sentences on the capture from another day, at the training tau and at its own."""
    lines = []
    for key, what in (("training_tau", f"at the training tau ({other['tau']:.3g})"),
                      ("own_tau", f"re-based on the day's own {other['own_tau_percentile']:g}th percentile "
                                  f"({other['own_tau']:.3g}; ranking only)")):
        res = {n: m[key] for n, m in other["models"].items()}
        rate = next(iter(res.values()))["positive_rate"]
        best = max(res, key=lambda n: res[n]["pr_auc"])
        base = [n for n in res if n in BASELINES]
        beats = all(res[selected]["pr_auc"] > res[b]["pr_auc"] for b in base) if selected not in BASELINES else None
        text = (f"Other day, {what}: positive rate {rate:.3f}; best PR-AUC {LABELS.get(best, best)} "
                f"{res[best]['pr_auc']:.3f}; the selected {LABELS.get(selected, selected)} {res[selected]['pr_auc']:.3f} "
                f"(ROC-AUC {res[selected]['roc_auc']:.3f})")
        if beats is not None:
            text += ", which " + ("beats" if beats else "does NOT beat") + " both baselines"
        lines.append(text + ".")
    return lines
