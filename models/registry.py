"""MLflow tracking and the model registry: one parent run per training, a child run per family.

The parent run holds the walk-forward across days (settings, the headline per family, every
fold) and the input datasets; each child run holds one family's served model, its threshold,
its figures and plots. The registered version becomes ``@champion`` only if its walk-forward
ratio to persistence is at least the current champion's **on the same walk-forward** (the
champion's family refitted fold by fold on this run's folds); otherwise it is ``@challenger``.
Aliases replace the old stages in MLflow 3.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import matplotlib.pyplot as plt
import mlflow
import mlflow.data
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from models.artifacts import TRUSTED_TYPES
from models.plots import model_figures
from models.training import ModelResult, TrainingResult

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
SCORE_TAG = "walk_forward_gm_ratio"
LOGGED_METRICS = ("pr_auc", "positive_rate", "roc_auc", "precision", "recall", "brier", "brier_skill", "alert_rate")
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


def _finite(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and np.isfinite(v)}


def _datasets(result: TrainingResult, source: str) -> list[tuple[Any, str]]:
    """The train and validation parts as MLflow dataset inputs (schema, row count, digest, source)."""
    s = result.settings
    out = []
    for name, part in result.parts.items():
        frame = part.loc[:, ["product_id", "ts", *s.features, s.sigma_col]]
        out.append((mlflow.data.from_pandas(frame, source=source, name=name, targets=s.sigma_col), name))
    return out


def log_training(experiment_id: str, result: TrainingResult, metas: dict[str, dict[str, Any]], source: str,
                 training_id: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Log the parent run and one child run per family; return (parent run id, run ids, model URIs)."""
    s = result.settings
    walk = result.walk
    datasets = _datasets(result, source)
    runs, uris = {}, {}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"training {training_id}") as parent:
        mlflow.set_tags({"training_id": training_id, "selected": result.selected, "kind": "training"})
        mlflow.log_params({
            "families": ",".join(walk.families), "features": ",".join(s.features), "tau_percentile": s.tau_percentile,
            "horizon_s": s.horizon_s, "alert_budget": s.alert_budget, "folds": s.folds,
            "initial_share": s.initial_share, "validation_share": s.validation_share, "embargo_s": s.embargo_s,
            "bootstrap_draws": s.bootstrap_draws, "selected": result.selected,
            **{f"tau_{p}": t for p, t in result.taus.items()},
        })
        for dataset, context in datasets:
            mlflow.log_input(dataset, context=context)
        for family, fam in walk.summary.items():
            mlflow.log_metrics(_finite({
                f"wf_{family}_gm_ratio": fam["gm_ratio"], f"wf_{family}_ci90_low": fam["gm_ratio_ci90"][0],
                f"wf_{family}_ci90_high": fam["gm_ratio_ci90"][1], f"wf_{family}_alert_rate": fam["alert_rate"],
                f"wf_{family}_precision": fam["precision"], f"wf_{family}_brier_skill": fam["brier_skill"]}))
        for fold in walk.folds:
            mlflow.log_metrics(_finite({f"fold_pr_auc_{f}": m["pr_auc"] for f, m in fold["models"].items()}
                                       | {"fold_positive_rate": fold["positive_rate"]}), step=fold["fold"])
        mlflow.log_dict({"settings": walk.settings, "summary": walk.summary, "folds": walk.folds}, "walk_forward.json")
        for name, model in result.models.items():
            runs[name], uris[name] = _log_child(experiment_id, result, model, metas[name], datasets, training_id)
    return parent.info.run_id, runs, uris


def _log_child(experiment_id: str, result: TrainingResult, model: ModelResult, meta: dict[str, Any],
               datasets: list[tuple[Any, str]], training_id: str) -> tuple[str, str]:
    s = result.settings
    with mlflow.start_run(experiment_id=experiment_id, run_name=model.name, nested=True) as run:
        mlflow.set_tags({"model_family": model.name, "training_id": training_id,
                         "selected": str(model.name == result.selected).lower()})
        mlflow.log_params({"family": model.name, "threshold": model.threshold, "threshold_rule": model.threshold_rule,
                           "alert_budget": s.alert_budget, "tau": result.tau,
                           **{f"{part}_{k}": v for part, rng in result.ranges().items() for k, v in rng.items()}})
        for dataset, context in datasets:
            mlflow.log_input(dataset, context=context)
        mlflow.log_metrics(_finite({f"validation_{k}": model.metrics[k] for k in LOGGED_METRICS}))
        wf = model.walk_forward
        mlflow.log_metrics(_finite({"wf_gm_ratio": wf["gm_ratio"], "wf_ci90_low": wf["gm_ratio_ci90"][0],
                                    "wf_ci90_high": wf["gm_ratio_ci90"][1], "wf_alert_rate": wf["alert_rate"],
                                    "wf_precision": wf["precision"], "wf_brier_skill": wf["brier_skill"]}))
        preds = result.walk.predictions
        for name, fig in model_figures(model.name, preds["y"].to_numpy(), preds[f"p_{model.name}"].to_numpy(),
                                       model.importance).items():
            mlflow.log_figure(fig, f"plots/{name}")
            plt.close(fig)
        example = result.parts["validation"].loc[:, ["product_id", *s.features]].dropna().head(5)
        example = example.astype({f: float for f in s.features})
        info = mlflow.sklearn.log_model(
            model.estimator, name="model", signature=infer_signature(example, model.estimator.predict_proba(example)),
            input_example=example, pip_requirements=pip_requirements(), pyfunc_predict_fn="predict_proba",
            metadata=meta, skops_trusted_types=TRUSTED_TYPES,
        )
        return run.info.run_id, info.model_uri


def register(model_uri: str, model_name: str, score: float, run_id: str, family: str = "",
             features: tuple[str, ...] = (),
             score_of: Callable[[str, tuple[str, ...]], float | None] | None = None) -> dict[str, Any]:
    """Register ``model_uri``; alias it champion when ``score`` (its walk-forward ratio) is at least what
    ``score_of(family, features)`` gives the current champion's family on the same walk-forward.

    Without ``score_of`` the champion's own recorded ratio is the bar (a weaker comparison: other folds).
    """
    client = MlflowClient()
    try:
        if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
            client.create_registered_model(model_name)
        current = _champion(client, model_name)
        mv = client.create_model_version(model_name, model_uri, run_id=run_id)
        for key, value in {SCORE_TAG: f"{score:.6f}", "family": family, "features": ",".join(features)}.items():
            client.set_model_version_tag(model_name, mv.version, key, value)
        champion_score, reason = None, "there was no champion"
        if current is not None and score_of is not None:
            champion_score = score_of(current["family"], current["features"]) if current["family"] else None
            reason = (f"its family ({current['family'] or 'unknown'}) cannot be refitted on this walk-forward"
                      if champion_score is None else
                      f"champion v{current['version']} ({current['family']}) scores {champion_score:.3f} on the same folds")
        elif current is not None:
            champion_score = current["own_walk_forward_gm_ratio"]
            reason = (f"champion v{current['version']} recorded {champion_score:.3f} on its own walk-forward"
                      if champion_score is not None else "the champion recorded no walk-forward ratio")
        wins = champion_score is None or score >= champion_score
        alias = CHAMPION if wins else CHALLENGER
        client.set_registered_model_alias(model_name, alias, mv.version)
    except MlflowException as exc:
        raise TrackingError(f"registering {model_name} failed ({_first_line(exc)})") from exc
    outcome = {
        "model_name": model_name, "version": str(mv.version), "alias": alias, "family": family,
        "walk_forward_gm_ratio": score, "reason": reason,
        "previous_champion": current and {**current, "features": list(current["features"]),
                                          "same_walk_forward_gm_ratio": champion_score},
    }
    log.info("registered %s version %s (%s, walk-forward %.3fx persistence) as @%s: %s", model_name, mv.version,
             family or "family not given", score, alias, reason)
    return outcome


def _champion(client: MlflowClient, model_name: str) -> dict[str, Any] | None:
    try:
        mv = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None  # no champion yet
        raise
    features = tuple(f for f in mv.tags.get("features", "").split(",") if f)
    return {"version": str(mv.version), "family": mv.tags.get("family"), "features": features,
            "own_walk_forward_gm_ratio": float(mv.tags[SCORE_TAG]) if SCORE_TAG in mv.tags else None}
