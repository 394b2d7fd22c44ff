"""Which model is served, where it comes from, and the switch between ml and baseline.

Two variants:
  * ``ml``: the registry alias (``models:/NAME@champion``); when the registry cannot be used,
    the selected model of the local artifacts folder (``models/artifacts/summary.json``);
  * ``baseline``: a baseline saved beside it (``models/artifacts/zscore`` by default).

The rollback switch is a one-word file (``ml`` or ``baseline``, path ``serving.variant_file``).
The API and the live scorer re-read it every ``serving.reload_s`` seconds; a new variant is
loaded first and then swapped in with one assignment, so a request that already holds the old
model finishes with it and no request is refused. The file outlives restarts on purpose: a
rolled-back service that crashes comes back as baseline. ``MODEL_VARIANT`` (``serving.variant``)
applies only while the file does not exist.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from common.config import Config
from models.artifacts import LoadedModel, ModelLoadError, load_model

log = logging.getLogger(__name__)

VARIANTS = ("ml", "baseline")
CHAMPION_ALIAS = "champion"

# An unreachable MLflow server must fail over to the local artifacts in seconds: MLflow's own
# defaults retry 7 times with backoff and wait up to 120 s per request.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


class VariantError(ValueError):
    """A variant name that is neither ml nor baseline; the message says what to use."""


def check_variant(value: str, where: str) -> str:
    variant = value.strip().lower()
    if variant not in VARIANTS:
        raise VariantError(f"{where}: model variant {value.strip()!r} is not one of {', '.join(VARIANTS)}")
    return variant


def read_variant_file(path: Path) -> str | None:
    """The variant written in ``path``, None when there is no file. Raises VariantError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return check_variant(text.split("#", 1)[0] or "", str(path))


def write_variant_file(path: Path, variant: str) -> None:
    """Atomically replace the switch file, so a reader never sees half a word."""
    variant = check_variant(variant, "write_variant_file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(variant + "\n")
    os.replace(tmp, path)


@dataclass(frozen=True)
class ModelSources:
    """Where each variant is loaded from."""

    ml_model: str  # models:/NAME@ALIAS, models:/NAME/VERSION or a folder
    artifacts_dir: Path  # fallback for ml; the baseline lives in artifacts_dir/baseline_model
    baseline_model: str
    tracking_uri: str
    features: tuple[str, ...]  # what the service validates; a model expecting others is refused

    @classmethod
    def from_config(cls, cfg: Config) -> "ModelSources":
        ml = cfg.serving.ml_model or f"models:/{cfg.mlflow.model_name}@{CHAMPION_ALIAS}"
        return cls(ml, Path(cfg.serving.artifacts_dir), cfg.serving.baseline_model,
                   cfg.mlflow.tracking_uri, tuple(cfg.features.model_features))


@dataclass(frozen=True)
class Served:
    """One loaded variant and how it was obtained."""

    variant: str
    model: LoadedModel
    fallback: bool  # ml came from the local artifacts because the registry could not be used
    alias: str | None  # the registry alias it was resolved from, if any
    loaded_at: float = field(default_factory=time.time)

    def describe(self) -> dict:
        m = self.model
        return {
            "model_variant": self.variant,
            "model_name": m.name,
            "model_version": m.version,
            "registry_alias": self.alias,
            "source": m.source,
            "fallback": self.fallback,
            "tau": m.tau,
            "taus": m.meta.get("taus"),
            "threshold": m.threshold,
            "alerts": m.meta.get("expected_alerts"),  # budget, expected alert rate and precision (walk-forward)
            "features": list(m.features),
            "trained_at": m.meta.get("trained_at"),
        }


def _registry_problem(uri: str, tracking_uri: str) -> str | None:
    """Why the registry cannot be asked at all (a SQLite store that does not exist), else None.

    Asking MLflow would create an empty database file in its place.
    """
    if not uri.startswith("models:/"):
        return None
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite":
        db = Path(tracking_uri[len("sqlite:///"):]) if tracking_uri.startswith("sqlite:///") else None
        if db is not None and not db.is_file():
            return f"no MLflow store at {tracking_uri}"
    return None


def _check_features(model: LoadedModel, features: tuple[str, ...]) -> LoadedModel:
    if tuple(model.features) != tuple(features):
        raise ModelLoadError(
            f"{model.source}: the model expects the features {list(model.features)}, the service validates "
            f"{list(features)}: serve it with the config it was trained with")
    return model


def load_variant(sources: ModelSources, variant: str) -> Served:
    """Load one variant; ml falls back to the local artifacts. Raises ModelLoadError."""
    if variant == "baseline":
        model = load_model(sources.artifacts_dir / sources.baseline_model)
        return Served("baseline", _check_features(model, sources.features), fallback=False, alias=None)
    uri = sources.ml_model
    problem = _registry_problem(uri, sources.tracking_uri)
    if problem is None:
        try:
            model = load_model(uri, tracking_uri=sources.tracking_uri)
            alias = uri.rsplit("@", 1)[1] if uri.startswith("models:/") and "@" in uri else None
            return Served("ml", _check_features(model, sources.features), fallback=False, alias=alias)
        except Exception as exc:  # any registry failure must leave the local artifacts as the way out
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not uri.startswith(("models:/", "runs:/")):
        raise ModelLoadError(problem)
    log.warning("ml model %s unavailable (%s); falling back to %s", uri, problem, sources.artifacts_dir)
    try:
        model = load_model(sources.artifacts_dir)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{uri}: {problem}; fallback: {exc}") from exc
    local_alias = (model.meta.get("mlflow") or {}).get("alias")
    return Served("ml", _check_features(model, sources.features), fallback=True, alias=local_alias)


class ModelHolder:
    """The served model, the desired variant, and the loading/switching between them.

    ``current()`` is what a request uses: one attribute read, safe from any thread.
    ``sync()`` (from one background thread or loop) follows the variant file, loads what is
    missing and swaps; it never raises, failures are kept in ``errors`` and retried.
    """

    def __init__(self, sources: ModelSources, default_variant: str, variant_file: Path | None,
                 retry_s: float = 10.0, loader: Callable[[ModelSources, str], Served] = load_variant) -> None:
        self.sources = sources
        self.default_variant = check_variant(default_variant, "serving.variant / MODEL_VARIANT")
        self.variant_file = variant_file
        self.retry_s = retry_s
        self._loader = loader
        self._active: Served | None = None
        self._loaded: dict[str, Served] = {}
        self._last_try: dict[str, float] = {}
        self._lock = threading.Lock()
        self.desired = self.default_variant
        self.desired_from = "config"  # serving.variant / MODEL_VARIANT, or "file"
        self.errors: dict[str, str] = {}
        self.file_error: str | None = None
        self.switches = 0
        self.listeners: list[Callable[[Served | None, Served], None]] = []

    def current(self) -> Served | None:
        return self._active

    def _read_desired(self) -> None:
        if self.variant_file is None:
            return
        try:
            wanted = read_variant_file(self.variant_file)
        except (VariantError, OSError, UnicodeDecodeError) as exc:
            if self.file_error != str(exc):
                log.error("%s; keeping %s", exc, self.desired)
            self.file_error = str(exc)
            return
        self.file_error = None
        if wanted is None:
            wanted, source = self.default_variant, "config"
        else:
            source = "file"
        if wanted != self.desired:
            log.info("model variant requested: %s (from the %s)", wanted,
                     f"variant file {self.variant_file}" if source == "file" else "config, MODEL_VARIANT")
        self.desired, self.desired_from = wanted, source

    def sync(self, force: bool = False) -> bool:
        """Follow the switch; True when the served model changed."""
        with self._lock:
            self._read_desired()
            target = self.desired
            if self._active is not None and self._active.variant == target:
                return False
            served = self._loaded.get(target)
            if served is None:
                now = time.monotonic()
                if not force and now - self._last_try.get(target, -1e18) < self.retry_s:
                    return False
                self._last_try[target] = now
                started = time.perf_counter()
                try:
                    served = self._loader(self.sources, target)
                except Exception as exc:  # a broken model must not take the service down; retried later
                    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    if self.errors.get(target) != message:
                        log.error("cannot load the %s model: %s (retrying every %.0f s)", target, message,
                                  self.retry_s)
                    self.errors[target] = message
                    return False
                self.errors.pop(target, None)
                self._loaded[target] = served
                log.info("loaded the %s model %s version %s from %s in %.1f s%s", target, served.model.name,
                         served.model.version, served.model.source, time.perf_counter() - started,
                         " (fallback: the registry could not be used)" if served.fallback else "")
            previous, self._active = self._active, served
            if previous is not None:
                self.switches += 1
                log.warning("now serving %s (%s version %s); was %s (%s version %s)", served.variant,
                            served.model.name, served.model.version, previous.variant, previous.model.name,
                            previous.model.version)
        for listener in self.listeners:
            listener(previous, served)
        return True

    def status(self) -> dict:
        served = self._active
        return {
            "model_loaded": served is not None,
            "model_variant": served.variant if served else None,
            "desired_variant": self.desired,
            "desired_from": self.desired_from,
            "variant_file": str(self.variant_file) if self.variant_file else None,
            "variant_file_error": self.file_error,
            "errors": dict(self.errors),
        }


def holder_from_config(cfg: Config, retry_s: float | None = None) -> ModelHolder:
    """The holder the API and the scorer build from the same config."""
    s = cfg.serving
    return ModelHolder(ModelSources.from_config(cfg), s.variant, Path(s.variant_file) if s.variant_file else None,
                       retry_s=s.model_retry_s if retry_s is None else retry_s)
