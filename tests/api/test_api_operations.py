"""What on-call relies on: health before and after the model loads, the registry fallback,
rate limiting, /metrics, and the rollback switch on a running server without refused requests."""

from __future__ import annotations

import shutil
import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from serving_helpers import run_script, uvicorn_server, value, wait_until


def test_health_is_503_until_a_model_exists_then_200(make_config, start_client, trained, tmp_path):
    empty = tmp_path / "artifacts"
    empty.mkdir()
    cfg = make_config(serving__artifacts_dir=str(empty), mlflow__tracking_uri=f"sqlite:///{tmp_path / 'none.db'}")
    client = start_client(cfg, wait_model=False)
    wait_until(lambda: client.get("/health").json()["errors"].get("ml"), 30, "the first load attempt")
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["model_loaded"] is False and "no model loaded" in health.json()["detail"]
    predict = client.post("/predict", json={"rows": [{f: 0.0 for f in trained.features}]})
    assert predict.status_code == 503 and "no model loaded" in predict.json()["detail"]
    assert not (tmp_path / "none.db").exists()  # asking the registry did not create an empty store

    for item in trained.artifacts.iterdir():  # the model appears (e.g. training finished)
        copy = shutil.copytree if item.is_dir() else shutil.copy2
        copy(item, empty / item.name)
    wait_until(lambda: client.get("/health").status_code == 200, 30, "the model to load")
    info = client.get("/version").json()
    assert info["model_variant"] == "ml" and info["fallback"] is True  # from the local artifacts
    assert info["model_name"] == trained.selected
    assert client.post("/predict", json={"rows": [{f: 0.0 for f in trained.features}]}).status_code == 200


def test_an_unreachable_registry_falls_back_to_the_local_artifacts(make_config, start_client, trained):
    cfg = make_config(mlflow__tracking_uri="http://127.0.0.1:9/")  # nothing listens on the discard port
    client = start_client(cfg)
    info = client.get("/version").json()
    assert info["fallback"] is True and info["source"] == str(trained.artifacts / trained.selected)
    assert info["model_version"] == "local"


def test_baseline_variant_from_the_config_serves_the_baseline(make_config, start_client):
    client = start_client(make_config(serving__variant="baseline"))
    info = client.get("/version").json()
    assert info["model_variant"] == "baseline" and info["model_name"] == "zscore"


def test_rate_limit_is_per_client_and_answers_429_with_retry_after(make_config, start_client, rows):
    cfg = make_config(serving__rate_limit_per_minute=5)
    first = start_client(cfg)
    statuses = [first.post("/predict", json={"rows": rows[:1]}).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    refused = first.post("/predict", json={"rows": rows[:1]})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "5 requests a minute" in refused.json()["detail"]
    assert first.get("/health").status_code == 200  # probes and scrapes are not limited
    other = start_client(cfg, client=("10.1.2.3", 40000))  # another client address, same limit, own budget
    assert other.post("/predict", json={"rows": rows[:1]}).status_code == 200
    metrics = first.get("/metrics").text
    assert value(metrics, "api_rate_limited_total") == 2
    assert value(metrics, "api_requests_total", route="/predict", method="POST", status="429") == 2


def test_metrics_parse_and_move_with_requests(client, rows):
    before = client.get("/metrics").text
    for _ in range(3):
        assert client.post("/predict", json={"rows": rows[:4]}).status_code == 200
    assert client.post("/predict", json={"rows": []}).status_code == 422
    after = client.get("/metrics").text
    families = {f.name for f in text_string_to_metric_families(after)}
    assert {"api_requests", "api_request_duration_seconds", "api_predictions", "api_prediction_score",
            "api_spike_alerts", "api_model_variant", "api_model_info"} <= families

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("api_requests_total", route="/predict", method="POST", status="200") == 3
    assert moved("api_requests_total", route="/predict", method="POST", status="422") == 1
    assert moved("api_request_duration_seconds_count", route="/predict") == 4
    assert moved("api_predictions_total", variant="ml") == 12
    assert moved("api_prediction_score_count", variant="ml") == 12
    assert value(after, "api_model_variant", variant="ml") == 1
    assert value(after, "api_model_variant", variant="baseline") == 0
    assert value(after, "api_model_loaded") == 1


def test_unknown_paths_share_one_route_label(client):
    before = client.get("/metrics").text
    for path in ("/a", "/b/c", "/predict/x"):
        assert client.get(path).status_code == 404
    after = client.get("/metrics").text
    assert value(after, "api_requests_total", route="unmatched", method="GET", status="404") - value(
        before, "api_requests_total", route="unmatched", method="GET", status="404") == 3


def test_rollback_switches_a_running_server_without_refusing_requests(make_config, rows, tmp_path):
    """The one step of the runbook (scripts/rollback.py) against uvicorn, while a client keeps sending."""
    cfg = make_config()
    app = create_app(cfg)
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()
    with uvicorn_server(app) as url:
        wait_until(lambda: httpx.get(f"{url}/health").status_code == 200, 60, "the model to load")

        def hammer() -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
                while not stop.is_set():
                    r = http.post("/predict", json={"rows": rows[:2]})
                    seen.append((r.status_code, r.json().get("model_variant")))

        sender = threading.Thread(target=hammer)
        sender.start()
        try:
            wait_until(lambda: len(seen) >= 20, 30, "requests before the switch")
            common = ["--variant-file", cfg.serving.variant_file, "--api", url,
                      "--scorer-metrics", "http://127.0.0.1:9/metrics", "--wait", "30"]
            assert run_script("rollback", ["baseline", *common]) == 0
            version = httpx.get(f"{url}/version").json()
            assert version["model_variant"] == "baseline" and version["model_name"] == "zscore"
            count = len(seen)
            wait_until(lambda: len(seen) >= count + 20, 30, "requests after the switch")
            assert run_script("rollback", ["ml", *common]) == 0
            count = len(seen)
            wait_until(lambda: len(seen) >= count + 20, 30, "requests after switching back")
        finally:
            stop.set()
            sender.join(30)
        info = httpx.get(f"{url}/version").json()
        metrics = httpx.get(f"{url}/metrics").text
    assert info["model_variant"] == "ml" and info["registry_alias"] == "champion"
    assert all(status == 200 for status, _ in seen), {s for s, _ in seen}
    variants = [v for _, v in seen]
    changes = [variants[i] for i in range(len(variants)) if i == 0 or variants[i] != variants[i - 1]]
    assert changes == ["ml", "baseline", "ml"]  # one clean switch each way, no flapping
    assert value(metrics, "api_model_switches_total", to="baseline") == 1
    assert value(metrics, "api_model_switches_total", to="ml") == 1
    assert value(metrics, "api_predictions_total", variant="baseline") > 0


def test_the_variant_file_outlives_a_restart_and_wins_over_the_default(make_config, start_client, tmp_path):
    cfg = make_config(serving__variant="ml")
    assert run_script("rollback", ["baseline", "--variant-file", cfg.serving.variant_file, "--no-wait"]) == 0
    client = start_client(cfg)
    health = client.get("/health").json()
    assert health["model_variant"] == "baseline" and health["desired_from"] == "file"


def test_a_garbled_variant_file_keeps_the_current_model(make_config, start_client, tmp_path):
    cfg = make_config()
    client = start_client(cfg)
    with open(cfg.serving.variant_file, "w") as handle:
        handle.write("champion\n")
    wait_until(lambda: client.get("/health").json()["variant_file_error"], 10, "the file to be read")
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["model_variant"] == "ml"
    assert "not one of ml, baseline" in health.json()["variant_file_error"]


def test_rollback_refuses_an_unknown_variant(capsys):
    with pytest.raises(SystemExit) as exc:
        run_script("rollback", ["champion"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_rollback_reports_an_api_that_does_not_confirm(make_config, capsys):
    cfg = make_config()
    code = run_script("rollback", ["baseline", "--variant-file", cfg.serving.variant_file,
                                   "--api", "http://127.0.0.1:9", "--scorer-metrics", "http://127.0.0.1:9/metrics",
                                   "--wait", "0.5"])
    assert code == 1
    err = capsys.readouterr().err
    assert "did not confirm baseline" in err and "/health" in err
    assert open(cfg.serving.variant_file).read().strip() == "baseline"  # the switch itself is written

