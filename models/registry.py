"""MLflow tracking and the model registry: one run per model, and the champion rule.

A new version becomes ``@champion`` only if its validation PR-AUC beats the current
champion's; otherwise it is ``@challenger``. Aliases replace the old stages in MLflow 3.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import matplotlib.pyplot as plt
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from models.artifacts import TRUSTED_TYPES
from models.plots import model_figures
from models.training import ModelResult, TrainingResult

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
SCORE_TAG = "validation_pr_auc"
LOGGED_METRICS = ("pr_auc", "positive_rate", "roc_auc", "f1", "precision", "recall", "brier", "alert_rate")
# Exact pins of what unpickling needs, so logging skips the slow requirement inference
# (those installed: xgboost-cpu on Linux, xgboost elsewhere).
REQUIREMENT_PACKAGES = ("scikit-learn", "xgboost-cpu", "xgboost", "skops", "numpy", "pandas", "scipy")


class TrackingError(RuntimeError):
    """The MLflow store cannot be reached or used; the message says which one."""


def pip_requirements() -> list[str]:
    pins = []
    for name in REQUIREMENT_PACKAGES:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a SQLite store, keep artifacts in ``mlartifacts/`` beside the database file."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None  # a server or another store decides
    db_path = Path(tracking_uri[len("sqlite:///"):])
    return (db_path.resolve().parent / "mlartifacts").as_uri()


def use_experiment(tracking_uri: str, experiment: str) -> str:
    """Point MLflow at the store and return the experiment id, creating it if needed."""
    mlflow.set_tracking_uri(tracking_uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        return mlflow.create_experiment(experiment, artifact_location=default_artifact_location(tracking_uri))
    except MlflowException as exc:
        raise TrackingError(f"MLflow store {tracking_uri} cannot be used ({_first_line(exc)})") from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def log_model_run(
    experiment_id: str,
    result: TrainingResult,
    model: ModelResult,
    meta: dict[str, Any],
    example: pd.DataFrame,
    training_id: str,
) -> tuple[str, str]:
    """Log one model's run (params, metrics, data ranges, plots, the model); return (run_id, model_uri)."""
    with mlflow.start_run(experiment_id=experiment_id, run_name=model.name) as run:
        mlflow.set_tags({"model_family": model.name, "training_id": training_id,
                         "selected": str(model.name == result.best).lower()})
        params: dict[str, Any] = {
            "family": model.name,
            **{f"param_{k}": v for k, v in model.params.items()},
            "tau": result.tau,
            "tau_percentile": result.tau_percentile,
            "horizon_s": result.horizon_s,
            "threshold": model.threshold,
            "threshold_rule": model.threshold_rule,
            "features": ",".join(result.features),
            "embargo_s": result.split.embargo_s,
            "split_fractions": ",".join(f"{f:g}" for f in result.fractions),
            "rows_dropped_by_embargo": result.split.dropped_by_embargo,
        }
        for part, rng in result.split.ranges().items():
            params.update({f"{part}_start": rng["start"], f"{part}_end": rng["end"], f"{part}_rows": rng["rows"]})
        mlflow.log_params(params)
        mlflow.log_metrics({
            f"{part}_{key}": float(values[key])
            for part, values in model.metrics.items() for key in LOGGED_METRICS if np.isfinite(values[key])
        })
        mlflow.log_metric("fit_seconds", model.fit_seconds)
        mlflow.log_dict({"split": result.split.ranges(), "candidates": model.candidates}, "data_and_candidates.json")
        for name, fig in model_figures(model.name, result.labels, model.scores, model.metrics, model.importance).items():
            mlflow.log_figure(fig, f"plots/{name}")
            plt.close(fig)
        proba = model.estimator.predict_proba(example)
        info = mlflow.sklearn.log_model(
            model.estimator,
            name="model",
            signature=infer_signature(example, proba),
            input_example=example,
            pip_requirements=pip_requirements(),
            pyfunc_predict_fn="predict_proba",
            metadata=meta,
            skops_trusted_types=TRUSTED_TYPES,
        )
        return run.info.run_id, info.model_uri


def register(model_uri: str, model_name: str, validation_pr_auc: float, run_id: str) -> dict[str, Any]:
    """Register ``model_uri`` and alias it champion (if it beats the champion) or challenger."""
    client = MlflowClient()
    try:
        if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
            client.create_registered_model(model_name)
        current = _champion_score(client, model_name)
        mv = client.create_model_version(model_name, model_uri, run_id=run_id)
        client.set_model_version_tag(model_name, mv.version, SCORE_TAG, f"{validation_pr_auc:.6f}")
        alias = CHAMPION if current is None or validation_pr_auc > current[1] else CHALLENGER
        client.set_registered_model_alias(model_name, alias, mv.version)
    except MlflowException as exc:
        raise TrackingError(f"registering {model_name} failed ({_first_line(exc)})") from exc
    outcome = {
        "model_name": model_name,
        "version": str(mv.version),
        "alias": alias,
        "validation_pr_auc": validation_pr_auc,
        "previous_champion": None if current is None else {"version": current[0], "validation_pr_auc": current[1]},
    }
    log.info("registered %s version %s as @%s (previous champion: %s)", model_name, mv.version, alias,
             "none" if current is None else f"v{current[0]} with validation PR-AUC {current[1]:.3f}")
    return outcome


def _champion_score(client: MlflowClient, model_name: str) -> tuple[str, float] | None:
    try:
        mv = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None  # no champion yet
        raise
    if SCORE_TAG in mv.tags:
        return str(mv.version), float(mv.tags[SCORE_TAG])
    run = client.get_run(mv.run_id)
    return str(mv.version), float(run.data.metrics.get(SCORE_TAG, float("-inf")))
