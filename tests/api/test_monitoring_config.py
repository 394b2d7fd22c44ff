"""The monitoring configuration agrees with the code: compose runs the serving services on
localhost ports, Prometheus scrapes them where they listen, and every series the Grafana
dashboard and the alert rules query is one the services export."""

from __future__ import annotations

import json
import os
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
ENV_NAMES = ("GRAFANA_ADMIN_PASSWORD", "MODEL_VARIANT", "RATE_LIMIT_PER_MINUTE", "COINBASE_WS_URL", "API_WORKERS",
             "TRUSTED_PROXIES")


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


def compose_config(env_file=None) -> subprocess.CompletedProcess:
    """`docker-compose [--env-file FILE] -f docker/compose.yaml config` as make stack runs it, in a clean environment."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is not installed: run `make compose-tool` (make test does)"
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    flags = ["--env-file", str(env_file)] if env_file else []
    return subprocess.run([tool, *flags, "-f", "docker/compose.yaml", "config"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text("GRAFANA_ADMIN_PASSWORD=only-for-this-test\n")
    result = compose_config(env_file)
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


def test_without_a_grafana_password_the_stack_refuses_to_start(tmp_path):
    result = compose_config()  # the root .env not passed, nor the variable set
    assert result.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr and "--env-file .env" in result.stderr
    empty = tmp_path / ".env"
    empty.write_text("GRAFANA_ADMIN_PASSWORD=\n")  # as .env.example ships it
    assert compose_config(empty).returncode != 0


def test_the_root_env_file_reaches_the_services(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("GRAFANA_ADMIN_PASSWORD=pw-from-env\nMODEL_VARIANT=baseline\nRATE_LIMIT_PER_MINUTE=7\n"
                        "COINBASE_WS_URL=wss://example.invalid/ws\nAPI_WORKERS=3\nTRUSTED_PROXIES=10.0.0.0/8\n")
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "pw-from-env"
    for name in ("api", "scorer", "drift-monitor"):
        env = services[name]["environment"]
        assert (env["MODEL_VARIANT"], str(env["RATE_LIMIT_PER_MINUTE"]), str(env["API_WORKERS"])) == \
            ("baseline", "7", "3")
        assert env["TRUSTED_PROXIES"] == "10.0.0.0/8"
    for name in ("ingestor", "featurizer"):
        assert services[name]["environment"]["COINBASE_WS_URL"] == "wss://example.invalid/ws"


def test_each_image_is_built_by_one_service_and_the_serving_ones_from_the_serving_sets(compose):
    services = compose["services"]
    builders: dict[str, list[str]] = {}
    for name, service in services.items():
        if "build" in service:
            builders.setdefault(service["image"], []).append(name)
    assert builders == {"volspike:latest": ["ingestor"], "volspike-serving:latest": ["api"],
                        "volspike-monitor:latest": ["drift-monitor"]}, builders
    assert services["api"]["build"]["args"]["REQUIREMENTS"] == "requirements-serving.txt"
    assert services["drift-monitor"]["build"]["args"]["REQUIREMENTS"] == "requirements-monitor.txt"
    built = set(builders)
    for name, service in services.items():  # every other service of ours uses an image built here
        if service["image"].startswith("volspike"):
            assert service["image"] in built, name


def test_services_wait_for_what_they_need(compose):
    services = compose["services"]
    for name in ("api", "scorer", "drift-monitor"):
        depends = services[name]["depends_on"]
        assert depends["mlflow"]["condition"] == "service_healthy", name
        assert depends["kafka-init"]["condition"] == "service_completed_successfully", name
    assert services["kafka"]["image"] == services["kafka-init"]["image"] == "apache/kafka:4.1.1"
    assert "ticks.predictions:3" in " ".join(services["kafka-init"]["command"])


def test_the_rollback_inside_the_stack_asks_the_services_where_they_listen(compose):
    services = compose["services"]
    for name in ("api", "scorer"):
        env = services[name]["environment"]
        assert env["API_URL"] == f"http://api:{SERVING['api']}"
        assert env["SCORER_METRICS_URL"] == f"http://scorer:{SERVING['scorer']}/metrics"
