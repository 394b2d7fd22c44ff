"""Training end to end: MLflow runs, metrics, registry and aliases, labels, split and loading."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.labels import sigma_column
from models.artifacts import load_model
from models.candidates import FAMILIES
from models.data import labeled_rows
from models.registry import CHALLENGER, CHAMPION, register
from models.training import train_models

pytestmark = pytest.mark.integration


def test_one_run_per_model_with_metrics_params_plots_and_model(trained):
    client = MlflowClient(trained.uri)
    experiment = client.get_experiment_by_name(trained.experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["model_family"] for r in runs) == sorted(FAMILIES)
    for run in runs:
        metrics, params = run.data.metrics, run.data.params
        for part in ("validation", "test"):
            for key in ("pr_auc", "positive_rate", "roc_auc", "f1", "precision", "recall", "brier"):
                assert f"{part}_{key}" in metrics
        assert float(params["tau"]) == pytest.approx(trained.summary["tau"])
        for key in ("threshold", "train_start", "train_end", "validation_start", "test_end", "features"):
            assert key in params
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert plots == {f"plots/{n}" for n in ("pr_curve.png", "roc_curve.png", "confusion_matrix.png",
                                                  "feature_importance.png")}
        family = run.data.tags["model_family"]
        assert metrics["test_pr_auc"] == pytest.approx(trained.summary["models"][family]["metrics"]["test"]["pr_auc"])


def test_best_model_registered_as_champion(trained):
    client = MlflowClient(trained.uri)
    registry = trained.summary["mlflow"]["registry"]
    version = client.get_model_version_by_alias(trained.model_name, CHAMPION)
    assert str(version.version) == registry["version"] == "1"
    run = client.get_run(version.run_id)
    assert run.data.tags["model_family"] == trained.summary["selected"]
    best = max(trained.summary["models"], key=lambda n: trained.summary["models"][n]["metrics"]["validation"]["pr_auc"])
    assert trained.summary["selected"] == best


def test_champion_only_when_validation_pr_auc_beats_it(trained):
    mlflow.set_tracking_uri(trained.uri)
    client = MlflowClient(trained.uri)
    run_id = trained.summary["mlflow"]["runs"][trained.summary["selected"]]
    uri = client.get_model_version_by_alias(trained.model_name, CHAMPION).source
    first = register(uri, "alias-rule", 0.30, run_id)
    worse = register(uri, "alias-rule", 0.20, run_id)
    equal = register(uri, "alias-rule", 0.30, run_id)
    better = register(uri, "alias-rule", 0.40, run_id)
    assert [first["alias"], worse["alias"], equal["alias"], better["alias"]] == [CHAMPION, CHALLENGER, CHALLENGER, CHAMPION]
    assert str(client.get_model_version_by_alias("alias-rule", CHAMPION).version) == better["version"]
    assert str(client.get_model_version_by_alias("alias-rule", CHALLENGER).version) == equal["version"]
    assert better["previous_champion"] == {"version": first["version"], "validation_pr_auc": 0.30}


def test_champion_loads_from_registry_and_scores_like_the_local_artifact(trained):
    test = pd.read_parquet(trained.test_out)
    champion = load_model(f"models:/{trained.model_name}@{CHAMPION}", tracking_uri=trained.uri)
    local = load_model(trained.artifacts)
    assert champion.name == local.name == trained.summary["selected"]
    assert champion.version == "1"
    assert champion.tau == pytest.approx(trained.summary["tau"])
    scores = champion.score(test)
    assert scores.shape == (len(test),)
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores, local.score(test))
    assert np.array_equal(champion.alert(test), scores >= champion.threshold)


def test_labels_are_sigma_at_or_above_tau_from_train_only(slice_table, cfg):
    sigma = sigma_column(cfg.label.horizon_s)
    labeled = labeled_rows(slice_table, sigma)
    result = train_models(labeled, cfg.features.model_features, sigma, cfg.label.horizon_s,
                          cfg.label.tau_percentile, embargo_s=cfg.label.horizon_s, families=("persistence",))
    parts = result.split.parts
    assert result.tau == pytest.approx(np.percentile(parts["train"][sigma], cfg.label.tau_percentile))
    for name, part in parts.items():
        expected = (part[sigma] >= result.tau).astype(int).to_numpy()
        assert np.array_equal(result.labels[name], expected), name
    # time order with an embargo of at least the horizon between parts
    gap1 = parts["validation"]["ts"].min() - parts["train"]["ts"].max()
    gap2 = parts["test"]["ts"].min() - parts["validation"]["ts"].max()
    assert min(gap1, gap2) >= pd.Timedelta(seconds=cfg.label.horizon_s)
    assert sum(len(p) for p in parts.values()) + result.split.dropped_by_embargo == len(labeled)


def test_artifact_metadata_records_what_inference_needs(trained, cfg):
    model = load_model(trained.artifacts / "logreg")
    assert model.features == tuple(cfg.features.model_features)
    assert model.meta["label_rule"] == "sigma_future_60s >= tau"
    assert model.meta["data"]["split"] == trained.summary["split"]
    assert model.meta["mlflow"]["run_id"] == trained.summary["mlflow"]["runs"]["logreg"]
    assert 0 < model.threshold < 1
