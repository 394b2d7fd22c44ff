"""Training end to end: walk-forward folds, tau per product, budget thresholds, MLflow runs and the registry."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.labels import sigma_column
from models.artifacts import load_model
from models.registry import CHALLENGER, CHAMPION, register
from models.walkforward import REFERENCE

pytestmark = pytest.mark.integration


def test_parent_run_with_a_child_run_per_family_and_the_input_datasets(trained, cfg):
    client = MlflowClient(trained.uri)
    experiment = client.get_experiment_by_name(trained.experiment)
    runs = client.search_runs([experiment.experiment_id])
    parent = client.get_run(trained.summary["mlflow"]["parent_run"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 1 + len(children)
    assert sorted(r.data.tags["model_family"] for r in children) == sorted(cfg.models.families)
    assert parent.data.tags["selected"] == trained.summary["selected"]
    assert float(parent.data.params["alert_budget"]) == cfg.models.alert_budget
    for run in (parent, *children):
        assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"train", "validation"}
    for family, fam in trained.summary["walk_forward"]["summary"].items():
        assert parent.data.metrics[f"wf_{family}_gm_ratio"] == pytest.approx(fam["gm_ratio"])
    for run in children:
        family = run.data.tags["model_family"]
        assert run.data.metrics["wf_gm_ratio"] == pytest.approx(trained.summary["walk_forward"]["summary"][family]["gm_ratio"])
        assert "validation_pr_auc" in run.data.metrics and "threshold" in run.data.params
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert plots == {"plots/pr_and_reliability.png", "plots/feature_importance.png"}


def test_selected_family_has_the_best_walk_forward_ratio_and_is_champion(trained):
    wf = trained.summary["walk_forward"]["summary"]
    assert trained.summary["selected"] == max(wf, key=lambda f: wf[f]["gm_ratio"])
    assert wf[REFERENCE]["gm_ratio"] == pytest.approx(1.0)
    version = MlflowClient(trained.uri).get_model_version_by_alias(trained.model_name, CHAMPION)
    assert str(version.version) == trained.summary["mlflow"]["registry"]["version"] == "1"
    assert version.tags["family"] == trained.summary["selected"]


def test_champion_moves_only_when_not_worse_on_the_same_walk_forward(trained, cfg):
    mlflow.set_tracking_uri(trained.uri)
    client = MlflowClient(trained.uri)
    run_id = trained.summary["mlflow"]["runs"][trained.summary["selected"]]
    uri = client.get_model_version_by_alias(trained.model_name, CHAMPION).source
    features = tuple(cfg.features.model_features)
    asked = []

    def same_walk_forward(scores):
        def score_of(family, feats):
            asked.append((family, feats))
            return scores[family]
        return score_of

    scores = {"har": 1.20, "gbm": 1.10, "zscore": 0.9}
    first = register(uri, "alias-rule", 1.20, run_id, "har", features, same_walk_forward(scores))
    worse = register(uri, "alias-rule", 1.10, run_id, "gbm", features, same_walk_forward(scores))
    equal = register(uri, "alias-rule", 1.20, run_id, "har", features, same_walk_forward(scores))
    better = register(uri, "alias-rule", 1.30, run_id, "gbm", features, same_walk_forward(scores))
    assert [first["alias"], worse["alias"], equal["alias"], better["alias"]] == [CHAMPION, CHALLENGER, CHAMPION, CHAMPION]
    assert asked == [("har", features)] * 3  # the champion's family, refitted on the same folds each time
    assert str(client.get_model_version_by_alias("alias-rule", CHAMPION).version) == better["version"]
    assert better["previous_champion"]["same_walk_forward_gm_ratio"] == pytest.approx(1.20)


def test_folds_keep_time_order_and_the_embargo(trained, cfg):
    folds = trained.summary["walk_forward"]["folds"]
    assert len(folds) == cfg.models.folds
    embargo = pd.Timedelta(seconds=cfg.models.embargo_s)
    for fold in folds:
        train, validation, test = (pd.Timestamp(fold[p]["start"]) for p in ("train", "validation", "test"))
        train_end, validation_end = pd.Timestamp(fold["train"]["end"]), pd.Timestamp(fold["validation"]["end"])
        assert train <= train_end < validation - embargo  # no training label reads a validation tick
        assert validation <= validation_end < test - embargo
    for earlier, later in zip(folds, folds[1:]):
        assert pd.Timestamp(earlier["test"]["end"]) <= pd.Timestamp(later["test"]["start"])
    days = {d for fold in folds for d in fold["days"]}
    assert days == {"2025-11-26", "2025-11-27"}


def test_tau_per_product_from_the_train_part_only(trained, slice_table, cfg):
    sigma = sigma_column(cfg.label.horizon_s)
    rng = trained.summary["split"]["train"]
    train = slice_table[(slice_table["ts"] >= pd.Timestamp(rng["start"])) & (slice_table["ts"] <= pd.Timestamp(rng["end"]))]
    train = train[train[sigma].notna()]
    assert len(train) == rng["rows"]
    for product, tau in trained.summary["taus"].items():
        assert tau == pytest.approx(np.percentile(train.loc[train["product_id"] == product, sigma], cfg.label.tau_percentile))
    assert sorted(trained.summary["taus"]) == ["BTC-USD", "ETH-USD", "SOL-USD"]


def test_every_served_model_alerts_on_the_budget_of_validation_rows(trained, cfg):
    rows = trained.summary["split"]["validation"]["rows"]
    for name, model in trained.summary["models"].items():
        rate = model["metrics"]["validation"]["alert_rate"]
        assert abs(rate - cfg.models.alert_budget) <= 0.01, (name, rate)  # ties at the cut aside
        assert "never max-F1" in model["threshold_rule"]
    assert rows > 1000


def test_champion_loads_from_registry_and_scores_like_the_local_artifact(trained):
    test = pd.read_parquet(trained.test_out)
    champion = load_model(f"models:/{trained.model_name}@{CHAMPION}", tracking_uri=trained.uri)
    local = load_model(trained.artifacts)
    assert champion.name == local.name == trained.summary["selected"]
    assert champion.version == "1"
    scores = champion.score(test)
    assert scores.shape == (len(test),) and np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores, local.score(test))
    np.testing.assert_allclose(champion.sigma(test), local.sigma(test))
    assert np.array_equal(champion.alert(test), scores >= champion.threshold)


def test_artifact_metadata_records_what_inference_and_operators_need(trained, cfg):
    for name in trained.summary["models"]:
        model = load_model(trained.artifacts / name)
        assert model.features == tuple(cfg.features.model_features)
        assert model.meta["taus"] == trained.summary["taus"]
        assert model.meta["label_rule"] == "sigma_future_60s >= tau of the row's product"
        expected = model.meta["expected_alerts"]
        assert expected["budget"] == cfg.models.alert_budget
        assert expected["alert_rate"] == trained.summary["walk_forward"]["summary"][name]["alert_rate"]
        assert expected["precision"] == trained.summary["walk_forward"]["summary"][name]["precision"]
        assert model.meta["mlflow"]["run_id"] == trained.summary["mlflow"]["runs"][name]
        assert 0 < model.threshold < 1
