"""Prometheus metrics of the API, and the pieces the live scorer shares with it.

Each service instance owns its registry (tests build several apps in one process). Spike
rate is not a gauge of its own: it is ``rate(..._spike_alerts_total) / rate(..._predictions_total)``,
recorded by Prometheus as ``volspike:api_spike_rate:5m`` (docker/prometheus/rules.yml).

With several worker processes (``serving.workers`` > 1) the values live in files under
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, set up by
scripts/serve_api.py before the workers start) and /metrics on any worker reports the sum over
all of them: counters and histograms add up; each gauge says how workers combine (the
``multiprocess_mode`` below). One scrape of the port sees the whole instance.
"""

from __future__ import annotations

import glob
import logging
import os
import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client import multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api.serving import VARIANTS, Served

# Seconds; fine below 50 ms where the latency objective lives (docs/slo.md).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)

# The *_created series double every counter and histogram and no dashboard here uses them.
disable_created_metrics()


class ModelGauges:
    """``<prefix>_model_variant{variant}`` (1 = served) and ``<prefix>_model_info{...}`` (1)."""

    def __init__(self, prefix: str, registry: CollectorRegistry) -> None:
        # Across API workers: a variant or model counts as served when any worker serves it, and the
        # instance counts as loaded only when every live worker is.
        self.variant = Gauge(f"{prefix}_model_variant", "1 for the model variant being served, 0 for the other",
                             ["variant"], registry=registry, multiprocess_mode="livemax")
        self.info = Gauge(f"{prefix}_model_info", "1 for the model being served, with its name, version and source",
                          ["variant", "name", "version", "fallback"], registry=registry, multiprocess_mode="livemax")
        self.loaded = Gauge(f"{prefix}_model_loaded", "1 when a model is loaded and requests can be scored",
                            registry=registry, multiprocess_mode="livemin")
        self.switches = Counter(f"{prefix}_model_switches_total", "switches of the served variant", ["to"],
                                registry=registry)
        for v in VARIANTS:
            self.variant.labels(v).set(0)
        self.loaded.set(0)

    def on_change(self, previous: Served | None, served: Served) -> None:
        if previous is not None:
            self.switches.labels(served.variant).inc()
            self.info.labels(*_info_labels(previous)).set(0)  # what a worker's file keeps in multiprocess mode
            self.info.remove(*_info_labels(previous))
        for v in VARIANTS:
            self.variant.labels(v).set(1 if v == served.variant else 0)
        self.info.labels(*_info_labels(served)).set(1)
        self.loaded.set(1)


def _info_labels(served: Served) -> tuple[str, str, str, str]:
    return served.variant, served.model.name, served.model.version, str(served.fallback).lower()


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter("api_requests_total", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("api_request_duration_seconds", "time from request start to response end",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("api_predictions_total", "rows scored", ["variant"], registry=r)
        self.spikes = Counter("api_spike_alerts_total", "rows scored at or above the model's threshold",
                              ["variant"], registry=r)
        self.scores = Histogram("api_prediction_score", "spike probabilities returned", ["variant"],
                                buckets=SCORE_BUCKETS, registry=r)
        self.batch_rows = Histogram("api_batch_rows", "rows per /predict request",
                                    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=r)
        self.rate_limited = Counter("api_rate_limited_total", "requests refused with 429", registry=r)
        self.refused = Counter("api_refused_total", "requests refused before scoring, by reason (rate_limit, "
                               "client_queue_full, queue_full, queue_wait, body_too_large, body_timeout, "
                               "body_not_utf8)", ["reason"], registry=r)
        self.queue = Gauge("api_queue_waiting", "/predict requests waiting for their turn", registry=r,
                           multiprocess_mode="livesum")
        self.model = ModelGauges("api", r)

    def observe_scores(self, variant: str, scores, threshold: float) -> None:
        n = len(scores)
        self.predictions.labels(variant).inc(n)
        self.batch_rows.observe(n)
        spikes = 0
        hist = self.scores.labels(variant)
        for s in scores:
            hist.observe(s)
            spikes += s >= threshold
        if spikes:
            self.spikes.labels(variant).inc(spikes)

    def exposition(self) -> bytes:
        path = multiprocess_dir()
        if path:
            forget_dead_workers(path)
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def multiprocess_dir() -> str | None:
    """The shared metrics folder when this process runs as one of several workers, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def forget_dead_workers(path: str) -> None:
    """Drop the live gauges of worker processes that no longer exist (a restarted worker has a new pid)."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = re.search(r"_(\d+)\.db$", name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.info("forgetting the live gauges of worker %d, which has exited", pid)
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:  # alive, another user's
            continue
