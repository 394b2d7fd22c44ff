"""make mlflow-ui: a real MLflow server on the project's store, opened at the runs, not the trace pages."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import pytest
from mlflow.tracking import MlflowClient
from testkit import free_port, wait_until

from common.config import REPO_ROOT, load_config

pytestmark = pytest.mark.integration


def test_the_ui_serves_the_store_and_prints_the_runs_address(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    experiment = load_config().mlflow.experiment
    experiment_id = MlflowClient(uri).create_experiment(experiment, artifact_location=(tmp_path / "art").as_uri())
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "mlflow_ui.py"), "--mlflow-uri", uri,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning" in first

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(answers, 60, "the MLflow UI to answer", interval_s=0.5)
        tags = MlflowClient(uri).get_experiment(experiment_id).tags
        assert tags["mlflow.experimentKind"] == "custom_model_development"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_server_uri_is_refused_with_a_clear_line() -> None:
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "mlflow_ui.py"), "--mlflow-uri",
                           "http://127.0.0.1:5000"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "is an MLflow server already" in proc.stderr
