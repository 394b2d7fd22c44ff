"""`make serve` (scripts/serve.py): the API and the live scorer together on a real broker, stopped together."""

from __future__ import annotations

import signal

import httpx
import pytest
import yaml

from serving_helpers import free_port, wait_until

pytestmark = pytest.mark.integration


def _config(path, trained, bootstrap: str, workdir) -> None:
    path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": bootstrap},
        "mlflow": {"tracking_uri": trained.uri, "model_name": "spike-api-test"},
        "serving": {"artifacts_dir": str(trained.artifacts), "variant_file": str(workdir / "model_variant"),
                    "scorer_group": "serve-test"},
    }))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_runs_api_and_scorer_and_stops_both(broker, spawn, trained, tmp_path):
    config = tmp_path / "config.yaml"
    _config(config, trained, broker.bootstrap, tmp_path)
    api_port, metrics_port = free_port(), free_port()
    serve = spawn("serve", ["scripts/serve.py", "--config", str(config), "--api-port", str(api_port),
                            "--metrics-port", str(metrics_port)])
    wait_until(lambda: _answers(f"http://127.0.0.1:{api_port}/health"), 90, "the API to be healthy")
    wait_until(lambda: "scorer_model_loaded 1.0" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text,
             60, "the scorer's model")
    assert httpx.get(f"http://127.0.0.1:{api_port}/version").json()["source"].startswith("models:/spike-api-test")
    serve.popen.send_signal(signal.SIGTERM)
    assert serve.wait(60) == 0, serve.stderr()[-3000:]
    assert not _answers(f"http://127.0.0.1:{api_port}/health")
    assert not _answers(f"http://127.0.0.1:{metrics_port}/metrics")


def test_serve_without_a_broker_says_to_start_one(spawn, trained, tmp_path):
    config = tmp_path / "config.yaml"
    _config(config, trained, f"127.0.0.1:{free_port()}", tmp_path)
    serve = spawn("serve", ["scripts/serve.py", "--config", str(config)])
    assert serve.wait(30) == 1
    assert "make kafka" in serve.stderr().strip().splitlines()[-1]
