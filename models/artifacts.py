"""Saving a trained model with its metadata, and loading one back from a folder or MLflow.

A model travels with what it needs to be used correctly: the feature list, tau per product
(the label threshold it was trained for), the alert threshold chosen on validation for the
alert budget, what to expect from its alerts, the training data range and its metrics. Locally that is ``<dir>/model.skops`` plus ``<dir>/model.json``; in
MLflow the same dictionary is the logged model's metadata. ``load_model`` hides which one it
was, so the inference CLI and the API share one way of scoring.

Models are stored with skops rather than pickle: loading refuses any type that is not on the
short list below, so a tampered file cannot run code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from models.data import TableError

MODEL_FILE = "model.skops"
META_FILE = "model.json"
SUMMARY_FILE = "summary.json"
PREDICTIONS_FILE = "walk_forward_predictions.parquet"  # out-of-sample scores of every fold
DEFAULT_ARTIFACTS = Path("models/artifacts")
CHALLENGER_ARTIFACTS = Path("models/challenger")  # a run whose best model did not become @champion
TRUSTED_TYPES = [
    "numpy.dtype",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBRegressor",
    "models.forecast.SpikeForecaster",
]
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class ModelLoadError(ValueError):
    """A model reference that cannot be loaded; the message says what to do."""


@dataclass
class LoadedModel:
    """A fitted model and the facts needed to use it; ``score`` returns spike probabilities.

    Rows are judged against the tau of their ``product_id`` when the table has that column.
    """

    name: str
    version: str
    source: str
    estimator: Any
    features: tuple[str, ...]
    tau: float
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    def check_columns(self, table: pd.DataFrame) -> None:
        missing = [f for f in self.features if f not in table.columns]
        if missing:
            raise TableError(
                f"the table lacks the model's input column(s) {', '.join(missing)}; "
                "build it with scripts/replay.py"
            )

    def _inputs(self, table: pd.DataFrame) -> pd.DataFrame:
        self.check_columns(table)
        X = table.loc[:, list(self.features)].astype(float)
        if "product_id" in table.columns:
            X.insert(0, "product_id", table["product_id"].to_numpy())
        return X

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """Probability of a spike in the next horizon for every row of ``table``."""
        return self.estimator.predict_proba(self._inputs(table))[:, 1]

    def sigma(self, table: pd.DataFrame) -> np.ndarray:
        """Forecast of the next horizon's volatility (sigma_future) for every row, whatever tau."""
        return self.estimator.sigma(self._inputs(table))

    def alert(self, table: pd.DataFrame) -> np.ndarray:
        """True where the score reaches the threshold chosen on validation."""
        return self.score(table) >= self.threshold


def save_local(directory: Path, estimator: Any, meta: dict[str, Any]) -> None:
    """Write the model file and its metadata JSON (model file first, so the JSON marks completion)."""
    directory.mkdir(parents=True, exist_ok=True)
    sio.dump(estimator, directory / MODEL_FILE)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")


def load_model(ref: str | Path | None = None, tracking_uri: str | None = None) -> LoadedModel:
    """Load from ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, a model folder, or an artifacts
    folder holding ``summary.json`` (its selected model). None means the local artifacts folder.
    ``tracking_uri`` (for MLflow references) defaults to MLflow's own setting."""
    text = str(ref) if ref is not None else str(DEFAULT_ARTIFACTS)
    if text.startswith(("models:/", "runs:/")):
        return _load_mlflow(text, tracking_uri)
    return _load_local(Path(text))


def _load_local(path: Path) -> LoadedModel:
    if (path / SUMMARY_FILE).is_file() and not (path / META_FILE).is_file():
        summary = json.loads((path / SUMMARY_FILE).read_text())
        path = path / summary["selected"]
    if not (path / META_FILE).is_file() or not (path / MODEL_FILE).is_file():
        raise ModelLoadError(
            f"{path}: no {MODEL_FILE} and {META_FILE} here; train first with models/train.py "
            "or pass --model models:/NAME@champion"
        )
    meta = json.loads((path / META_FILE).read_text())
    untrusted = [t for t in sio.get_untrusted_types(file=path / MODEL_FILE) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ModelLoadError(f"{path / MODEL_FILE}: refusing to load unexpected type(s) {', '.join(untrusted)}")
    estimator = sio.load(path / MODEL_FILE, trusted=TRUSTED_TYPES)
    return _from_meta(meta, estimator, source=str(path), version=str(meta.get("mlflow", {}).get("version", "local")))


def _load_mlflow(uri: str, tracking_uri: str | None) -> LoadedModel:
    import mlflow
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    version = "run"
    try:
        match = _MODEL_URI.match(uri)
        if match and match["alias"]:
            version = mlflow.MlflowClient().get_model_version_by_alias(match["name"], match["alias"]).version
        elif match:
            version = match["version"]
        meta = mlflow.models.get_model_info(uri).metadata or {}
        estimator = mlflow.sklearn.load_model(uri)
    except (MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"{uri}: cannot be loaded from MLflow at {mlflow.get_tracking_uri()} ({first}); "
            "train first or check MLFLOW_TRACKING_URI"
        ) from exc
    if "features" not in meta:
        raise ModelLoadError(f"{uri}: the logged model has no metadata (features, tau, threshold)")
    return _from_meta(meta, estimator, source=uri, version=str(version))


def _from_meta(meta: dict[str, Any], estimator: Any, source: str, version: str) -> LoadedModel:
    return LoadedModel(
        name=meta["name"], version=version, source=source, estimator=estimator,
        features=tuple(meta["features"]), tau=float(meta["tau"]), threshold=float(meta["threshold"]), meta=meta,
    )
