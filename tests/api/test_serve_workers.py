"""scripts/serve_api.py with several worker processes on one port: the rate limit holds per client across
them, forwarded headers from loopback are not believed, /metrics on any worker counts every request, and a
worker that dies is replaced without losing counts."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml

from common.config import REPO_ROOT

from serving_helpers import free_port, value, wait_until

pytestmark = pytest.mark.integration

LIMIT = 30  # a minute: one token every 2 s


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _predict_lines(proc) -> list[dict]:
    lines = [json.loads(line) for line in proc.stderr().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("route") == "/predict"]


def _worker_pids(proc) -> set[int]:
    lines = [json.loads(line) for line in proc.stderr().splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if line.get("message", "").startswith("loaded the ml model")}


def test_two_workers_share_the_rate_limit_and_the_metrics(spawn, trained, rows, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env_dir = tmp_path / "metrics"
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    config["serving"]["max_queue_wait_s"] = 30.0  # about sharing, not shedding: a slow machine must not shed here
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(env_dir)  # read by the spawned script (Proc copies os.environ)
    try:
        api = spawn("api", ["scripts/serve_api.py", "--port", str(port), "--workers", "2", "--rate-limit", str(LIMIT),
                            "--model-uri", str(trained.artifacts / trained.selected),
                            "--artifacts-dir", str(trained.artifacts), "--variant-file", str(tmp_path / "variant"),
                            "--config", str(tmp_path / "config.yaml")])
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    workers: set[int] = set()
    try:
        wait_until(lambda: len(_worker_pids(api)) == 2, 120, "both workers to load the model", 0.25)
        workers = _worker_pids(api)
        started = time.monotonic()

        def post(i: int) -> int:  # a new connection each time, so both workers take some
            return httpx.post(f"{url}/predict", json={"rows": rows[:1]}, timeout=30,
                              headers={"X-Forwarded-For": f"198.51.100.{i % 250}", "Connection": "close"}).status_code

        statuses: list[int] = []
        with ThreadPoolExecutor(8) as pool:
            for burst in range(12):
                statuses += list(pool.map(post, range(burst * 8, burst * 8 + 8)))
                if burst >= 4 and len({line["pid"] for line in _predict_lines(api)}) == 2:
                    break
        elapsed = time.monotonic() - started
        served_by = {line["pid"] for line in _predict_lines(api)}
        assert served_by == workers, (served_by, workers)  # both workers answered /predict
        assert set(statuses) == {200, 429}
        # One budget for the client, not one per worker (nor one per spoofed address).
        assert statuses.count(200) <= LIMIT + elapsed * LIMIT / 60 + 1
        assert {line["client"] for line in _predict_lines(api)} == {"127.0.0.1"}

        for _ in range(6):  # whichever worker answers the scrape, it counts every request
            text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
            for code in (200, 429):
                counted = value(text, "api_requests_total", route="/predict", method="POST", status=str(code))
                assert counted == statuses.count(code), code
            assert value(text, "api_model_loaded") == 1 and value(text, "api_model_variant", variant="ml") == 1

        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(_worker_pids(api) - {victim}) == 2, 120, "a replacement worker", 0.25)
        workers = _worker_pids(api)

        def settled() -> bool:
            text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
            return value(text, "api_model_loaded") == 1 and value(
                text, "api_requests_total", route="/predict", method="POST", status="200") == statuses.count(200)

        wait_until(settled, 60, "the metrics to count the dead worker's requests and the new worker's model", 0.5)
        assert api.stop(60) == 0
        wait_until(lambda: not any(_alive(pid) for pid in workers), 30, "the workers to exit")
    finally:
        for pid in workers:  # never leave a worker of ours behind, even when an assertion failed
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
