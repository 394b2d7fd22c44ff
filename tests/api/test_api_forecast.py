"""The forecast in the API: sigma beside the probability, tau by product, the alert budget in /version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.artifacts import load_model


def test_predict_carries_the_forecast_sigma_of_each_row(client, rows, trained):
    body = client.post("/predict", json={"rows": rows[:5]}).json()
    model = load_model(trained.artifacts / trained.selected)
    frame = pd.DataFrame(rows[:5]).loc[:, list(model.features)]
    np.testing.assert_allclose(body["sigmas"], model.sigma(frame), rtol=1e-9)
    np.testing.assert_allclose(body["scores"], model.score(frame), rtol=1e-9)
    assert all(0 < s <= 1 for s in body["sigmas"])


def test_product_id_picks_the_tau_and_leaves_sigma_alone(client, rows, trained):
    model = load_model(trained.artifacts / trained.selected)
    product = next(iter(model.meta["taus"]))
    plain = client.post("/predict", json={"rows": rows[:3]}).json()
    named = client.post("/predict", json={"rows": [{**r, "product_id": product} for r in rows[:3]]}).json()
    assert named["sigmas"] == plain["sigmas"]
    frame = pd.DataFrame(rows[:3]).assign(product_id=product)
    np.testing.assert_allclose(named["scores"], model.score(frame), rtol=1e-9)
    if model.meta["taus"][product] != model.tau:
        assert named["scores"] != plain["scores"]


def test_version_states_the_alert_budget_and_what_to_expect(client, trained):
    alerts = client.get("/version").json()["alerts"]
    expected = load_model(trained.artifacts / trained.selected).meta["expected_alerts"]
    assert alerts == expected
    assert 0 < alerts["budget"] < 1 and 0 <= alerts["alert_rate"] <= 1
    assert "precision" in alerts and "positive_rate" in alerts


def test_the_rollback_baseline_alerts_at_the_budget_too(trained):
    baseline = load_model(trained.artifacts / "zscore")
    assert "never max-F1" in baseline.meta["threshold_rule"]
    assert baseline.meta["expected_alerts"]["budget"] == pytest.approx(baseline.meta["alert_budget"])
