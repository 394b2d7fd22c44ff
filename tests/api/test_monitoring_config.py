"""The monitoring configuration agrees with the code: compose runs the serving services on
localhost ports, Prometheus scrapes them where they listen, and every series the Grafana
dashboard and the alert rules query is one the services export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import CollectorRegistry

from api.drift_monitor import DriftMetrics
from api.metrics import ApiMetrics
from api.scorer import ScorerMetrics
from common.config import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
SERVING = {"api": 8000, "scorer": 9101, "drift-monitor": 9102}


def exported_names() -> set[str]:
    """Every sample name the API, the scorer and the drift monitor can expose."""
    names: set[str] = set()
    for build in (ApiMetrics, ScorerMetrics, DriftMetrics):
        registry = CollectorRegistry()
        build(registry)
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
            names.update(family.name + s for s in suffixes)
    return names


def recorded_names() -> set[str]:
    rules = yaml.safe_load((DOCKER / "prometheus" / "rules.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def queried_names(expr: str) -> set[str]:
    """Series names in a PromQL expression (ours all start with api_, scorer_, drift_ or volspike:)."""
    return set(re.findall(r"\b((?:api|scorer|drift)_[a-z0-9_]+|volspike:[a-z0-9_:]+)", expr))


@pytest.fixture(scope="module")
def compose() -> dict:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is not installed: run `make compose-tool` (make test does)"
    result = subprocess.run([tool, "-f", "docker/compose.yaml", "config"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_runs_the_serving_services_on_localhost_ports_only(compose):
    services = compose["services"]
    for name in [*SERVING, "prometheus", "grafana"]:
        assert name in services, name
        ports = services[name].get("ports", [])
        assert ports and all(str(p).startswith("127.0.0.1:") for p in ports), (name, ports)
    for name, port in SERVING.items():
        command = services[name]["command"]
        assert str(port) in command and "0.0.0.0" in command  # listens inside its container
    api, scorer = services["api"]["environment"], services["scorer"]["environment"]
    assert api["MODEL_VARIANT_FILE"] == scorer["MODEL_VARIANT_FILE"]  # one rollback switch for both
    assert any("serving-state" in v for v in services["api"]["volumes"])
    assert any("serving-state" in v for v in services["scorer"]["volumes"])


def test_prometheus_scrapes_each_service_where_it_listens():
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    for name, port in SERVING.items():
        assert f"{name}:{port}" in targets[name]


def test_every_dashboard_and_rule_query_names_an_exported_series():
    known = exported_names() | recorded_names()
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "volspike.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DOCKER / "prometheus" / "rules.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = set().union(*(queried_names(e) for e in exprs))
    assert used and used <= known, sorted(used - known)


def test_the_dashboard_has_the_panels_on_call_needs():
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "volspike.json").read_text())
    text = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for needed in ("rate(api_requests_total", "histogram_quantile(0.99, sum by (le) (rate(api_request_duration",
                   'status=~"5.."', "scorer_last_score", "scorer_consumer_lag", "drift_share"):
        assert needed in text, needed
    datasource = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in datasource["datasources"]}
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} <= uids
