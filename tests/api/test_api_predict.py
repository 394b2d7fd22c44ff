"""POST /predict, /version and /docs on the real app: valid batches, and every bad input is a 422
that names the field (never a 500)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from api.logs import JsonFormatter
from serving_helpers import MODEL_NAME
from models.artifacts import load_model


def test_valid_batch_scores_every_row_with_the_registered_model(client, rows, trained):
    response = client.post("/predict", json={"rows": rows[:20]})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = load_model(trained.artifacts / trained.selected).score(pd.DataFrame(rows[:20]))
    np.testing.assert_allclose(body["scores"], expected, rtol=1e-9)
    assert body["alerts"] == [s >= body["threshold"] for s in body["scores"]]
    assert body["model_variant"] == "ml" and body["model"] == trained.selected
    assert body["version"] == trained.version  # the registry version: loaded through @champion
    assert body["ts"].endswith("+00:00")


def test_rows_in_any_key_order_and_integers_are_accepted(client, rows):
    row = {k: rows[0][k] for k in reversed(list(rows[0]))}
    row["spread_rel_60s"] = int(round(row["spread_rel_60s"]))
    response = client.post("/predict", json={"rows": [row]})
    assert response.status_code == 200, response.text
    assert len(response.json()["scores"]) == 1


def test_version_names_model_registry_alias_tau_threshold_features_and_code(client, trained):
    info = client.get("/version").json()
    meta = load_model(trained.artifacts / trained.selected).meta
    assert info["model_name"] == trained.selected and info["model_version"] == trained.version
    assert info["registry_alias"] == "champion" and info["source"] == f"models:/{MODEL_NAME}@champion"
    assert info["fallback"] is False
    assert info["tau"] == pytest.approx(meta["tau"]) and info["threshold"] == pytest.approx(meta["threshold"])
    assert info["features"] == list(trained.features)
    assert info["code_version"].startswith("0.")


def _bad(rows: list[dict], case: str):
    row = dict(rows[0])
    if case == "missing field":
        del row["log_rv_60s"]
        return {"rows": [row]}, "rows[0].log_rv_60s"
    if case == "extra field":
        return {"rows": [{**row, "price": 1.0}]}, "rows[0].price"
    if case == "string":
        return {"rows": [{**row, "spread_rel_30s": "0.1"}]}, "rows[0].spread_rel_30s"
    if case == "boolean":
        return {"rows": [{**row, "log_ewma_rv_60s": True}]}, "rows[0].log_ewma_rv_60s"
    if case == "null":
        return {"rows": [{**row, "log_rv_30s": None}]}, "rows[0].log_rv_30s"
    if case == "huge value":
        return {"rows": [{**row, "spread_rel_60s": 1e300}]}, "rows[0].spread_rel_60s"
    if case == "empty batch":
        return {"rows": []}, "rows"
    if case == "oversized batch":
        return {"rows": [row] * 1001}, "rows"
    if case == "second row bad":
        return {"rows": [row, {**row, "spread_rel_900s": [1]}]}, "rows[1].spread_rel_900s"
    if case == "no rows key":
        return {"row": [row]}, "rows"
    if case == "rows not a list":
        return {"rows": row}, "rows"
    if case == "body not an object":
        return [row], "body"
    raise AssertionError(case)


CASES = ["missing field", "extra field", "string", "boolean", "null", "huge value", "empty batch", "oversized batch",
         "second row bad", "no rows key", "rows not a list", "body not an object"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_422_naming_the_field(client, rows, case):
    payload, field = _bad(rows, case)
    response = client.post("/predict", json=payload)
    assert response.status_code == 422, response.text
    body = response.json()
    assert field in [e["field"] for e in body["errors"]], body
    assert body["detail"] and body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_422_naming_the_field(client, rows, literal):
    row = json.dumps({**rows[0], "log_rv_300s": 12345.5}).replace("12345.5", literal)
    response = client.post("/predict", content=f'{{"rows": [{row}]}}', headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["rows[0].log_rv_300s"]


@pytest.mark.parametrize("content, content_type", [
    (b'{"rows": [', "application/json"),
    (b"", "application/json"),
    (b'{"rows": []}', "text/plain"),
    (b"\xff\xfe", "application/json"),
    (b"\xd3", "application/json"),
    (b'{"rows": [{"rv_60s": "\xe9"}]}', "application/json"),
])
def test_unreadable_bodies_are_422(client, content, content_type):
    response = client.post("/predict", content=content, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    assert response.json()["errors"]


def test_a_body_larger_than_the_biggest_valid_batch_is_refused_unread(client):
    response = client.post("/predict", content=b" " * 10_000_000, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "rows" in response.json()["detail"]


def test_request_id_is_kept_when_given_and_made_otherwise(client, rows):
    given = client.post("/predict", json={"rows": rows[:1]}, headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/health", headers={"X-Request-ID": "not valid because of spaces"})
    assert made.headers["x-request-id"] != "not valid because of spaces" and len(made.headers["x-request-id"]) == 32


def test_each_request_is_logged_as_one_json_line_with_its_request_id(client, rows, caplog):
    with caplog.at_level(logging.INFO, logger="api.app"):
        response = client.post("/predict", json={"rows": rows[:3]}, headers={"X-Request-ID": "trace-me"})
    records = [r for r in caplog.records if getattr(r, "request_id", None) == "trace-me"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == "trace-me" and line["status"] == response.status_code == 200
    assert line["route"] == "/predict" and line["rows"] == 3 and line["model_variant"] == "ml"
    assert line["duration_ms"] > 0 and line["level"] == "INFO"


def test_openapi_docs_describe_the_feature_row(client, trained):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    row = schema["components"]["schemas"]["FeatureRow"]
    assert sorted(row["required"]) == sorted(trained.features)
    assert row["additionalProperties"] is False
    body = schema["components"]["schemas"]["PredictRequest"]["properties"]["rows"]
    assert body["minItems"] == 1 and body["maxItems"] == 1000
