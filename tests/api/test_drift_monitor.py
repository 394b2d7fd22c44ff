"""The live drift monitor: live feature rows from the broker against the model's training rows,
the Evidently report written, the drifted share exported as a metric."""

from __future__ import annotations

import json
import shutil

import httpx
import pandas as pd
import pytest
from prometheus_client import generate_latest

from api.drift_monitor import DriftError, DriftMonitor, DriftSettings, LiveWindow, reference_from_meta
from common.config import load_config
from models.artifacts import load_model
from serving_helpers import MODEL_NAME, free_port, run_script, value, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def live_topic(broker, trained, capsys):
    """400 test-part rows on the feature topic, sent by the drill feed as the featurizer would."""
    topic = load_config(environ={}).kafka.topic_features
    assert run_script("feed_features", ["--features", str(trained.test_path), "--limit", "400", "--rate", "0",
                                        "--bootstrap", broker.bootstrap]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sent"] == 400
    return topic


def test_once_compares_the_live_window_with_the_training_rows(broker, live_topic, trained, tmp_path, capsys):
    out_dir = tmp_path / "drift"
    code = run_script("drift_monitor", [
        "--once", "--bootstrap", broker.bootstrap, "--artifacts-dir", str(trained.artifacts),
        "--mlflow-uri", trained.uri, "--model-uri", f"models:/{MODEL_NAME}@champion", "--out-dir", str(out_dir),
        "--minutes", "600", "--min-rows", "100", "--metrics-port", "0"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["outcome"] == "ok" and result["read"] == 400 and result["current"]["rows"] == 400
    assert result["columns"] == len(trained.features) and 0 <= result["drift_share"] <= 1
    assert result["drifted_count"] == round(result["drift_share"] * result["columns"])
    report = json.loads((out_dir / "latest.json").read_text())
    assert report["drift_share"] == result["drift_share"]
    assert (out_dir / f"{result['json'].rsplit('/', 1)[1]}").is_file() and result["html"].endswith(".html")
    train = load_model(trained.artifacts / trained.selected).meta["data"]["split"]["train"]
    assert result["reference"]["start"] >= train["start"][:19] and result["reference"]["end"] <= train["end"]


def test_the_drift_share_is_exported_and_too_few_rows_give_no_verdict(broker, live_topic, trained, tmp_path):
    meta = load_model(trained.artifacts / trained.selected).meta
    reference = reference_from_meta(meta, trained.features, None, max_rows=5000)
    assert len(reference) == 5000
    settings = DriftSettings(broker.bootstrap, live_topic, window_s=36_000, min_rows=1000, out_dir=tmp_path / "d")
    monitor = DriftMonitor(settings, reference, trained.features)
    monitor.connect()
    try:
        assert monitor.catch_up() == 400
    finally:
        monitor.close()

    def text() -> str:
        return generate_latest(monitor.metrics.registry).decode()

    assert monitor.evaluate()["outcome"] == "too_few_rows"
    assert value(text(), "drift_runs_total", outcome="too_few_rows") == 1
    assert value(text(), "drift_window_rows") == 400

    monitor.settings = DriftSettings(broker.bootstrap, live_topic, 36_000, 100, tmp_path / "d")
    result = monitor.evaluate()
    assert result["outcome"] == "ok"
    exported = text()
    assert value(exported, "drift_share") == pytest.approx(result["drift_share"])
    assert value(exported, "drift_drifted_columns") == result["drifted_count"]
    assert value(exported, "drift_runs_total", outcome="ok") == 1
    for column in trained.features:
        assert value(exported, "drift_column_distance", column=column) == pytest.approx(result_distance(
            tmp_path / "d", result, column))


def result_distance(out_dir, result: dict, column: str) -> float:
    """The column's drift statistic as written in the Evidently JSON report."""
    report = json.loads((out_dir / result["json"].rsplit("/", 1)[1]).read_text())
    return next(float(m["value"]) for m in report["metrics"]
                if m["metric_name"].startswith("ValueDrift(") and m["config"]["column"] == column)


def test_the_window_keeps_only_the_last_minutes_of_event_time():
    window = LiveWindow(("a",), window_s=60)
    for second in (0, 30, 100, 130, 150):
        window.add(second * 10**9, [float(second)])
    frame = window.frame()
    assert frame["a"].tolist() == [100.0, 130.0, 150.0]
    assert frame["ts"].iloc[-1] == pd.Timestamp(150, unit="s", tz="UTC")


def test_a_missing_training_table_says_to_pass_a_reference(trained, tmp_path):
    meta = {"data": {"table": str(tmp_path / "gone.parquet")}}
    with pytest.raises(DriftError, match="--reference"):
        reference_from_meta(meta, trained.features, None, 100)


def test_running_on_it_waits_for_a_missing_training_table_instead_of_exiting(broker, live_topic, trained, spawn,
                                                                               tmp_path):
    table, port = tmp_path / "later.parquet", free_port()
    monitor = spawn("drift", ["scripts/drift_monitor.py", "--bootstrap", broker.bootstrap, "--reference", str(table),
                              "--reference-retry-s", "0.5", "--metrics-port", str(port), "--out-dir",
                              str(tmp_path / "drift")])

    def reference_rows() -> float | None:
        try:
            return value(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text, "drift_reference_rows")
        except httpx.HTTPError:
            return None

    wait_until(lambda: reference_rows() == 0 and "no reference yet" in monitor.stderr(), 60,
               "the monitor to report that it waits")
    assert monitor.popen.poll() is None and "later.parquet" in monitor.stderr()
    shutil.copy(trained.features_path, table)  # e.g. make demo finished
    wait_until(lambda: (reference_rows() or 0) > 0, 60, "the reference to be read")
    assert monitor.stop(60) == 0
