"""Fixtures for the serving tests: a model trained here on a real slice, a throwaway MLflow
store holding it as @champion, apps built from a test config, a uvicorn on loopback, a broker.

Every wait is bounded; every service is started by a fixture on a free loopback port and
stopped at teardown.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.serving import holder_from_config
from common.config import Config, load_config
from features.replay import expand_inputs, replay, write_parquet
from models import train
from models.artifacts import TRUSTED_TYPES, load_model
from models.registry import pip_requirements, register, use_experiment
from serving_helpers import MODEL_NAME, SLICE, wait_until

@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> SimpleNamespace:
    """models/train.py on the slice (local artifacts), then its selected model logged and
    registered as @champion in a temporary SQLite MLflow store, as a training run does."""
    root = tmp_path_factory.mktemp("serving-model")
    cfg = load_config(environ={})
    table, _ = replay(expand_inputs([SLICE]), cfg.features, cfg.label.horizon_s)
    features_path = root / "features.parquet"
    write_parquet(table, features_path)
    artifacts, test_path = root / "artifacts", root / "features_test.parquet"
    assert train.main(["--features", str(features_path), "--no-mlflow", "--artifacts", str(artifacts),
                       "--test-out", str(test_path)]) == 0
    selected = json.loads((artifacts / "summary.json").read_text())["selected"]
    uri = f"sqlite:///{root / 'mlflow.db'}"
    local = load_model(artifacts / selected)
    experiment = use_experiment(uri, "serving-test")
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(local.estimator, name="model", pip_requirements=pip_requirements(),
                                        pyfunc_predict_fn="predict_proba", metadata=local.meta,
                                        skops_trusted_types=TRUSTED_TYPES)
    registry = register(info.model_uri, MODEL_NAME, 0.5, run.info.run_id)
    assert registry["alias"] == "champion"
    return SimpleNamespace(root=root, artifacts=artifacts, uri=uri, selected=selected, version=registry["version"],
                           features_path=features_path, test_path=test_path, test=pd.read_parquet(test_path),
                           features=tuple(cfg.features.model_features))


@pytest.fixture(scope="session")
def rows(trained) -> list[dict]:
    """Complete real feature rows (what a client sends)."""
    table = trained.test.loc[:, list(trained.features)].dropna()
    return table.head(50).to_dict(orient="records")


def serving_config(trained, workdir: Path, **overrides) -> Config:
    """The test config: the temporary store and artifacts, a fast switch, rate limiting off."""
    values = {
        "mlflow.tracking_uri": trained.uri, "mlflow.model_name": MODEL_NAME, "serving.ml_model": "",
        "serving.artifacts_dir": str(trained.artifacts), "serving.variant_file": str(workdir / "model_variant"),
        "serving.variant": "ml", "serving.reload_s": 0.1, "serving.model_retry_s": 0.2,
        "serving.rate_limit_per_minute": 0, "serving.drift_dir": str(workdir / "drift"),
    }
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load_config(overrides=values, environ={})


@pytest.fixture
def make_config(trained, tmp_path) -> Callable[..., Config]:
    """``make_config(serving__rate_limit_per_minute=5, ...)``: the test config with overrides."""
    return lambda **overrides: serving_config(trained, tmp_path, **overrides)


@pytest.fixture
def start_client(trained, tmp_path):
    """Factory: a TestClient (lifespan running) on an app built from ``cfg``; closed at teardown."""
    clients: list[TestClient] = []

    def start(cfg: Config, wait_model: bool = True, **client_options) -> TestClient:
        client = TestClient(create_app(cfg), **client_options)
        client.__enter__()
        clients.append(client)
        if wait_model:
            wait_until(lambda: client.get("/health").status_code == 200, 60, "the model to load")
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def preloaded_app(trained, tmp_path_factory):
    """One app whose model is loaded before any request (for many short tests and the fuzz run)."""
    cfg = serving_config(trained, tmp_path_factory.mktemp("preloaded"))
    holder = holder_from_config(cfg)
    assert holder.sync(force=True), holder.errors
    return create_app(cfg, holder)


@pytest.fixture(scope="session")
def client(preloaded_app) -> Iterator[TestClient]:
    with TestClient(preloaded_app) as test_client:
        yield test_client
