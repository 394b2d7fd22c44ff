"""The load test's verdicts come from the measured statuses, not from re-reading its own prose."""

from __future__ import annotations

from types import SimpleNamespace

from api.load_report import report_body
from api.loadgen import Results
from api.loadtest import HostileCase, Phase

SERVING = SimpleNamespace(max_queue=16, max_queue_wait_s=0.25)
INFO = {"model_name": "m", "model_version": "1", "model_variant": "ml"}


def _results(statuses: list[int], latency: float = 0.005) -> Results:
    results = Results(seconds=1.0)
    for status in statuses:
        results.add(status, latency)
    return results


def _report(abused: list[HostileCase], target_statuses: list[int]) -> str:
    phases = [Phase("target 100/s", 100.0, _results(target_statuses))]
    return report_body(phases, None, abused, INFO, batch_rows=1, capacity=500.0, workers=1, serving=SERVING)


def test_a_server_error_in_any_hostile_case_is_not_met():
    quiet = [HostileCase("100 MB chunked body", "413 after 20 ms", errors_5xx=0),
             HostileCase("flood", "good client: 50/50 served", good_served=(50, 50))]
    assert "hostile cases (a flood's own 503s aside): met" in _report(quiet, [200] * 10)
    broken = [HostileCase("100 MB chunked body", "500 after 20 ms", errors_5xx=1), quiet[1]]
    assert "hostile cases (a flood's own 503s aside): not met" in _report(broken, [200] * 10)


def test_the_good_client_and_the_latency_target_are_judged_on_counts():
    starved = [HostileCase("flood", "good client: 49/50 served", good_served=(49, 50))]
    text = _report(starved, [200] * 9 + [503])
    assert "the good client fully served during the flood: not met (good client: 49/50 served)" in text
    assert "p95 < 20 ms at 100 one-row requests a second: not met" in text  # one of ten refused
    assert "p95 < 20 ms at 100 one-row requests a second: met" in _report(starved, [200] * 10)
