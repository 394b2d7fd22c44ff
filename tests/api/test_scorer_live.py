"""The live scorer end to end against a real local broker: feature rows in, predictions out,
bad rows to the DLQ, metrics that move, the rollback switch followed, a clean stop."""

from __future__ import annotations

import json
import signal
import time

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from api.scorer import parse_row
from api.serving import write_variant_file
from common.config import load_config
from features.ticks import format_time_ns
from models.artifacts import load_model
from serving_helpers import MODEL_NAME, feature_records, free_port, publish, read_topic, samples, value, wait_until

pytestmark = pytest.mark.integration


def scores_by_key(predictions: list[dict]) -> dict[tuple, float]:
    return {(p["product_id"], p["ts"]): p["score"] for p in predictions}


def test_scorer_scores_the_feature_topic_and_follows_the_rollback(broker, spawn, trained, tmp_path):
    cfg = load_config(environ={})
    columns = cfg.features.columns
    now = format_time_ns(time.time_ns())
    first = feature_records(trained.test.iloc[:300], columns, received_at=now)
    first[7]["log_rv_300s"] = None  # a segment start: no 300 s volatility yet; scored as missing
    bad = [(b"BTC-USD", b"{not json"), (b"BTC-USD", orjson.dumps({k: v for k, v in first[0].items() if k != "log_rv_60s"}))]
    publish(broker.bootstrap, cfg.kafka.topic_features,
            [(r["product_id"].encode(), orjson.dumps(r)) for r in first] + bad)

    port, variant_file = free_port(), tmp_path / "model_variant"
    scorer = spawn("scorer", [
        "scripts/live_scorer.py", "--bootstrap", broker.bootstrap, "--metrics-port", str(port),
        "--artifacts-dir", str(trained.artifacts), "--mlflow-uri", trained.uri,
        "--model-uri", f"models:/{MODEL_NAME}@champion", "--variant-file", str(variant_file), "--group", "scorer-test"])
    metrics_url = f"http://127.0.0.1:{port}/metrics"

    def metrics() -> str:
        try:
            return httpx.get(metrics_url, timeout=2).text
        except httpx.HTTPError:
            return ""

    values = read_topic(broker.bootstrap, cfg.kafka.topic_predictions, 300, timeout_s=90)
    predictions = [orjson.loads(v) for v in values]
    assert len(predictions) == 300, scorer.stderr()[-3000:]
    ml = load_model(trained.artifacts / trained.selected)
    table = pd.DataFrame([parse_row(orjson.dumps(r), ml.features)[1] for r in first], columns=list(ml.features))
    expected = dict(zip([(r["product_id"], r["ts"]) for r in first], ml.score(table)))
    got = scores_by_key(predictions)
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-9)
    p = predictions[0]
    assert p["model_variant"] == "ml" and p["model_version"] == trained.version and p["received_at"] == now
    assert p["alert"] == (p["score"] >= p["threshold"])

    text = wait_until(lambda: (t := metrics()) and value(t, "scorer_predictions_total", variant="ml") == 300 and
                    sum(v for (n, _), v in samples(t).items() if n == "scorer_consumer_lag") == 0 and t,
                    30, "metrics of 300 predictions and no lag")
    assert value(text, "scorer_rows_total") == 302
    assert value(text, "scorer_invalid_rows_total", reason="not_json") == 1
    assert value(text, "scorer_invalid_rows_total", reason="missing_feature") == 1
    assert value(text, "scorer_e2e_latency_seconds_count") == 300 and value(text, "scorer_e2e_latency_seconds_sum") > 0
    assert 0 <= value(text, "scorer_last_score", product_id="BTC-USD") <= 1
    assert value(text, "scorer_model_variant", variant="ml") == 1
    assert value(text, "scorer_prediction_score_count", variant="ml") == 300
    dlq = [json.loads(v) for v in read_topic(broker.bootstrap, cfg.kafka.topic_dlq, 2, timeout_s=30)]
    assert sorted(d["reason"] for d in dlq) == ["missing_feature", "not_json"]
    assert all(d["source"] == "scorer" and d["topic"] == cfg.kafka.topic_features for d in dlq)

    write_variant_file(variant_file, "baseline")  # the rollback: the scorer follows within reload_s
    wait_until(lambda: value(metrics(), "scorer_model_variant", variant="baseline") == 1, 30, "the switch")
    second = feature_records(trained.test.iloc[300:350], columns, received_at=now)
    publish(broker.bootstrap, cfg.kafka.topic_features, [(r["product_id"].encode(), orjson.dumps(r)) for r in second])
    after = [orjson.loads(v) for v in read_topic(broker.bootstrap, cfg.kafka.topic_predictions, 350, timeout_s=60)]
    late = [q for q in after if q["model_variant"] == "baseline"]
    assert len(late) == 50 and {q["model_name"] for q in late} == {"zscore"}
    zscore = load_model(trained.artifacts / "zscore")
    np.testing.assert_allclose([scores_by_key(late)[(r["product_id"], r["ts"])] for r in second],
                               zscore.score(pd.DataFrame(second)), rtol=1e-9)

    scorer.popen.send_signal(signal.SIGTERM)
    assert scorer.stop() == 0, scorer.stderr()[-3000:]
    final = json.loads(scorer.stdout().strip().splitlines()[-1])
    assert final["predictions"] == 350 and final["invalid"] == 2 and final["model_variant"] == "baseline"


def test_scorer_without_a_broker_exits_with_one_clear_line(spawn, trained, tmp_path):
    scorer = spawn("scorer", [
        "scripts/live_scorer.py", "--bootstrap", f"127.0.0.1:{free_port()}", "--metrics-port", "0",
        "--artifacts-dir", str(trained.artifacts), "--model-uri", str(trained.artifacts / trained.selected),
        "--variant-file", str(tmp_path / "v")])
    assert scorer.wait(60) == 1
    lines = scorer.stderr().strip().splitlines()
    assert lines[-1].startswith("live_scorer: ") and "make kafka" in lines[-1]


@pytest.mark.parametrize("value_, reason", [
    (b"[1]", "not_object"),
    (b'{"product_id": 1, "ts": 5}', "bad_identity"),
    (b'{"product_id": "X", "ts": 5.5}', "bad_identity"),
])
def test_parse_row_names_what_is_wrong(value_, reason):
    assert parse_row(value_, ("a",))[2] == reason


def test_parse_row_takes_nulls_as_missing_and_refuses_other_non_numbers():
    ok = parse_row(b'{"product_id": "X", "ts": 5, "a": null, "b": 2}', ("a", "b"))
    assert ok[2] == "" and np.isnan(ok[1][0]) and ok[1][1] == 2.0
    assert parse_row(b'{"product_id": "X", "ts": 5, "a": true, "b": 2}', ("a", "b"))[2] == "not_a_number"
    assert parse_row(b'{"product_id": "X", "ts": 5, "a": "1", "b": 2}', ("a", "b"))[2] == "not_a_number"


def test_scorer_reconnects_after_the_broker_comes_back(broker, spawn, trained, tmp_path):
    """The runbook's broker-loss case: stop the (in-memory) broker, start it again, rows flow again."""
    cfg = load_config(environ={})
    port = free_port()
    scorer = spawn("scorer", [
        "scripts/live_scorer.py", "--bootstrap", broker.bootstrap, "--metrics-port", str(port),
        "--artifacts-dir", str(trained.artifacts), "--model-uri", str(trained.artifacts / trained.selected),
        "--variant-file", str(tmp_path / "model_variant"), "--group", "scorer-outage"])

    def metric(name: str) -> float:
        try:
            return value(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text, name)
        except httpx.HTTPError:
            return -1.0

    wait_until(lambda: metric("scorer_broker_connected") == 1, 60, "the scorer to connect")
    broker.stop()
    wait_until(lambda: metric("scorer_broker_connected") == 0, 30, "the scorer to notice the broker is gone")
    broker.start()
    wait_until(lambda: metric("scorer_reconnects_total") == 1 and metric("scorer_broker_connected") == 1, 60,
             "the scorer to reconnect")
    rows = feature_records(trained.test.iloc[:20], cfg.features.columns, received_at=format_time_ns(time.time_ns()))
    publish(broker.bootstrap, cfg.kafka.topic_features, [(r["product_id"].encode(), orjson.dumps(r)) for r in rows])
    assert len(read_topic(broker.bootstrap, cfg.kafka.topic_predictions, 20, timeout_s=60)) == 20
    assert scorer.stop() == 0, scorer.stderr()[-3000:]
    assert "reconnected to" in scorer.stderr()
