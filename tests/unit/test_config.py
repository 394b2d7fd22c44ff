"""The config loader: CLI > environment > config.yaml > code default; unknown keys and bad values are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import Config, ConfigError, load_config
from features.online import FeatureSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def yaml_file(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path
    return write


def test_empty_yaml_gives_the_code_defaults(yaml_file):
    assert load_config(yaml_file(""), environ={}) == Config()


def test_repository_config_yaml_loads():
    cfg = load_config(REPO / "config.yaml", environ={})
    assert isinstance(cfg.features, FeatureSpec)
    assert cfg.features.columns[:3] == ("product_id", "ts", "segment")
    assert cfg.models.families == ("persistence", "zscore", "har", "gbm")
    assert 0 < cfg.models.alert_budget < 1 and cfg.models.embargo_s >= cfg.label.horizon_s


def test_precedence_cli_over_env_over_yaml_over_default(yaml_file):
    path = yaml_file("kafka:\n  bootstrap_servers: yaml-host:1\n")
    env = {"KAFKA_BOOTSTRAP_SERVERS": "env-host:2"}
    cli = {"kafka.bootstrap_servers": "cli-host:3"}
    assert load_config(path, overrides=cli, environ=env).kafka.bootstrap_servers == "cli-host:3"
    assert load_config(path, environ=env).kafka.bootstrap_servers == "env-host:2"
    assert load_config(path, environ={}).kafka.bootstrap_servers == "yaml-host:1"
    assert load_config(yaml_file(""), environ={}).kafka.bootstrap_servers == Config().kafka.bootstrap_servers


def test_none_overrides_and_empty_env_values_are_ignored(yaml_file):
    path = yaml_file("mlflow:\n  tracking_uri: file:///yaml\n")
    cfg = load_config(path, overrides={"mlflow.tracking_uri": None}, environ={"MLFLOW_TRACKING_URI": ""})
    assert cfg.mlflow.tracking_uri == "file:///yaml"


@pytest.mark.parametrize("env_name, section, key", [
    ("KAFKA_BOOTSTRAP_SERVERS", "kafka", "bootstrap_servers"),
    ("MLFLOW_TRACKING_URI", "mlflow", "tracking_uri"),
    ("COINBASE_WS_URL", "coinbase", "ws_url"),
])
def test_each_environment_variable_overrides_its_key(yaml_file, env_name, section, key):
    cfg = load_config(yaml_file(""), environ={env_name: "from-env"})
    assert getattr(getattr(cfg, section), key) == "from-env"


def test_yaml_values_are_coerced_to_declared_types(yaml_file):
    path = yaml_file("kafka:\n  partitions: '5'\nfeatures:\n  windows_s: [10, 20.5]\n  segment_gap_s: 12\n"
                     "coinbase:\n  products: [BTC-USD, ETH-USD]\nlabel:\n  horizon_s: 30\n")
    cfg = load_config(path, environ={})
    assert cfg.kafka.partitions == 5
    assert cfg.features == FeatureSpec(windows_s=(10.0, 20.5), segment_gap_s=12.0)
    assert cfg.coinbase.products == ("BTC-USD", "ETH-USD")
    assert cfg.label.horizon_s == 30.0


def test_cli_overrides_take_text_lists(yaml_file):
    cfg = load_config(yaml_file(""), overrides={"features.windows_s": "5, 15", "coinbase.products": "A-USD,B-USD"},
                      environ={})
    assert cfg.features.windows_s == (5.0, 15.0)
    assert cfg.coinbase.products == ("A-USD", "B-USD")


@pytest.mark.parametrize("text, key", [
    ("kafak:\n  partitions: 3\n", "kafak"),
    ("kafka:\n  bootstrap_server: x:1\n", "kafka.bootstrap_server"),
    ("features:\n  window_s: [1]\n", "features.window_s"),
])
def test_unknown_yaml_key_is_an_error_naming_it(yaml_file, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(yaml_file(text), environ={})


def test_unknown_override_key_is_an_error_naming_it(yaml_file):
    with pytest.raises(ConfigError, match=r"label\.horizon"):
        load_config(yaml_file(""), overrides={"label.horizon": 30}, environ={})


@pytest.mark.parametrize("text, key", [
    ("kafka:\n  partitions: three\n", "kafka.partitions"),
    ("kafka:\n  partitions: 2.5\n", "kafka.partitions"),
    ("label:\n  horizon_s: soon\n", "label.horizon_s"),
    ("features:\n  windows_s: [30, sixty]\n", "features.windows_s"),
    ("features:\n  segment_gap_s: [1, 2]\n", "features.segment_gap_s"),
    ("kafka:\n  topic_raw: {name: ticks}\n", "kafka.topic_raw"),
])
def test_bad_type_is_an_error_naming_the_key(yaml_file, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(yaml_file(text), environ={})


def test_section_that_is_not_a_mapping_is_an_error(yaml_file):
    with pytest.raises(ConfigError, match="kafka"):
        load_config(yaml_file("kafka: 5\n"), environ={})


@pytest.mark.parametrize("text, key", [("features:\n  segment_gap_s: 0\n", "segment_gap_s"),
                                       ("features:\n  windows_s: [30, -5]\n", "windows_s"),
                                       ("features:\n  ewma_halflives_s: [0]\n", "ewma_halflives_s"),
                                       ("models:\n  alert_budget: 1.5\n", "alert_budget"),
                                       ("models:\n  folds: 1\n", "folds"),
                                       ("models:\n  validation_share: 0\n", "validation_share"),
                                       ("models:\n  families: []\n", "families"),
                                       ("drift:\n  false_alarm_target: 0\n", "false_alarm_target"),
                                       ("drift:\n  window_minutes: -1\n", "window_minutes")])
def test_out_of_range_values_are_config_errors(yaml_file, text, key):
    with pytest.raises(ConfigError, match=key):
        load_config(yaml_file(text), environ={})


def test_invalid_yaml_and_missing_file_are_config_errors(yaml_file, tmp_path):
    with pytest.raises(ConfigError):
        load_config(yaml_file("kafka: [unclosed\n"), environ={})
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError):
        load_config(yaml_file("- just\n- a list\n"), environ={})
