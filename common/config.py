"""The one configuration loader.

Precedence, highest first: CLI flags (passed as ``overrides``) > environment (and ``.env``)
> ``config.yaml`` > the defaults written in the dataclasses below. A key that no dataclass
declares is an error that names it, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from dotenv import load_dotenv

from common.featurespec import FeatureSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_PATH = REPO_ROOT / "config.yaml"

# Environment variable -> dotted config key.
ENV_KEYS = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "MLFLOW_TRACKING_URI": "mlflow.tracking_uri",
    "COINBASE_WS_URL": "coinbase.ws_url",
    "MODEL_VARIANT": "serving.variant",
    "MODEL_URI": "serving.ml_model",
    "MODEL_VARIANT_FILE": "serving.variant_file",
    "RATE_LIMIT_PER_MINUTE": "serving.rate_limit_per_minute",
    "TRUSTED_PROXIES": "serving.trusted_proxies",
    "API_WORKERS": "serving.workers",
    "API_URL": "serving.api_url",
    "SCORER_METRICS_URL": "serving.scorer_metrics_url",
}


class ConfigError(ValueError):
    """A configuration file, variable or flag that cannot be used as given."""


@dataclass(frozen=True)
class CoinbaseConfig:
    ws_url: str = "wss://advanced-trade-ws.coinbase.com"
    products: tuple[str, ...] = ("BTC-USD",)
    watchdog_s: float = 5.0  # reconnect when no frame (heartbeats come every second) for this long
    backoff_initial_s: float = 0.5  # first reconnect delay; doubles per failure, with jitter
    backoff_max_s: float = 30.0  # reconnect delay cap


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "localhost:9092"
    topic_raw: str = "ticks.raw"
    topic_features: str = "ticks.features"
    topic_dlq: str = "ticks.dlq"
    partitions: int = 3
    consumer_group: str = "featurizer"
    topic_predictions: str = "ticks.predictions"


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str = "sqlite:///mlruns.db"
    experiment: str = "volatility-spike"
    model_name: str = "volatility-spike"


@dataclass(frozen=True)
class LabelConfig:
    horizon_s: float = 60.0
    tau_percentile: float = 90.0


@dataclass(frozen=True)
class ModelsConfig:
    """Walk-forward evaluation, the candidate set and the alert budget (docs/model_card_v1.md)."""

    families: tuple[str, ...] = ("persistence", "zscore", "har", "gbm")  # fixed before any evaluation
    folds: int = 6  # walk-forward folds, each scored once by models fitted on the rows before it
    initial_share: float = 0.3  # share of labeled rows before the first fold
    validation_share: float = 0.2  # last share of each training window: probability map and alert threshold
    embargo_s: float = 60.0  # dropped before each cut; at least the label horizon
    alert_budget: float = 0.1  # share of rows that alert, at the threshold chosen on validation
    bootstrap_draws: int = 1000  # day-level bootstrap of the walk-forward headline

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2, got {self.folds}")
        for name in ("initial_share", "validation_share", "alert_budget"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.embargo_s < 0 or self.bootstrap_draws < 0:
            raise ValueError("embargo_s and bootstrap_draws must not be negative")
        if not self.families:
            raise ValueError("families must name at least one model family")


@dataclass(frozen=True)
class DriftConfig:
    """How a window of features is called drifted, calibrated on windows of the training rows."""

    window_minutes: float = 10.0  # the windows compared with the training rows (live: serving.drift_window_minutes)
    dataset_share: float = 0.5  # a window drifts when at least this share of the model's columns do
    false_alarm_target: float = 0.1  # highest false-alarm rate between training windows, leaving one day out

    def __post_init__(self) -> None:
        if self.window_minutes <= 0:
            raise ValueError(f"window_minutes must be positive, got {self.window_minutes}")
        if not 0.0 < self.dataset_share <= 1.0 or not 0.0 < self.false_alarm_target < 1.0:
            raise ValueError("dataset_share must be in (0, 1] and false_alarm_target in (0, 1)")


@dataclass(frozen=True)
class PathsConfig:
    raw_dir: str = "data/raw"
    features: str = "data/processed/features.parquet"
    reports_dir: str = "reports"
    spool_dir: str = "data/spool"  # raw records waiting for an unreachable broker
    stream_dir: str = "data/processed/stream"  # the live featurizer's Parquet parts and checkpoint


@dataclass(frozen=True)
class ServingConfig:
    """The prediction API, the live scorer and the drift monitor (see docs/runbook.md)."""

    variant: str = "ml"  # ml | baseline, used when the variant file does not exist
    ml_model: str = ""  # "" = models:/<mlflow.model_name>@champion; a model folder also works
    artifacts_dir: str = "models/artifacts"  # fallback for ml, and home of the baseline
    baseline_model: str = "zscore"  # the folder under artifacts_dir served as the baseline
    variant_file: str = "data/serving/model_variant"  # the rollback switch, read while running
    reload_s: float = 1.0  # how often the variant file is checked
    model_retry_s: float = 10.0  # how often a model that failed to load is tried again
    rate_limit_per_minute: int = 100  # per client on /predict; 0 turns it off
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-For names the client
    workers: int = 1  # API worker processes sharing the port
    max_queue: int = 16  # /predict requests waiting per worker before 503
    max_queue_per_client: int = 4  # of those, from one client before 429
    max_queue_wait_s: float = 0.25  # a request waiting longer for its turn gets 503
    body_timeout_s: float = 10.0  # a request body not received within this gets 408
    max_batch_rows: int = 1000
    api_url: str = "http://127.0.0.1:8000"  # where scripts/rollback.py asks the API
    scorer_metrics_url: str = "http://127.0.0.1:9101/metrics"  # where it asks the scorer
    scorer_group: str = "scorer"
    drift_window_minutes: float = 10.0  # compare the last N minutes, every N minutes
    drift_min_rows: int = 300  # fewer live rows than this: no verdict
    drift_dir: str = "reports/drift"


@dataclass(frozen=True)
class Config:
    coinbase: CoinbaseConfig = field(default_factory=CoinbaseConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    features: FeatureSpec = field(default_factory=FeatureSpec)
    label: LabelConfig = field(default_factory=LabelConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the Config from yaml, environment and CLI overrides (dotted keys, None = unset)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if environ is None:
        load_dotenv(override=False)
        environ = os.environ
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc}); fix the file") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        data = loaded
    elif path != DEFAULT_CONFIG_PATH:
        raise ConfigError(f"config file {path} does not exist")
    for env_name, dotted in ENV_KEYS.items():
        if environ.get(env_name):
            _set_dotted(data, dotted, environ[env_name])
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    return _build(Config, data, "")


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section '{where or 'top level'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"unknown config key '{where}{key}'; known keys here: {', '.join(sorted(known))}"
            )
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, f"{where}{name}.")
        else:
            values[name] = _coerce(value, hint, f"{where}{name}")
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"config section '{where.rstrip('.') or 'top level'}': {exc}") from exc


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Turn yaml/env values into the declared type: '3' -> 3, 'a,b' or [a, b] -> tuple."""
    try:
        if typing.get_origin(hint) is tuple:
            (item_type, _) = typing.get_args(hint)
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_coerce(v.strip() if isinstance(v, str) else v, item_type, key) for v in items)
        if hint is float:
            return float(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is str:
            if isinstance(value, (dict, list, bool)) or value is None:
                raise TypeError(value)
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key '{key}' = {value!r} is not a valid {_type_name(hint)}") from exc
    raise ConfigError(f"config key '{key}' has an unsupported type {hint}")


def _type_name(hint: Any) -> str:
    return "list" if typing.get_origin(hint) is tuple else getattr(hint, "__name__", str(hint))


