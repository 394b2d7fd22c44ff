"""The API load test's section of the benchmark report: a row a phase, then each target met or not."""

from __future__ import annotations

import os

import numpy as np

from api.loadgen import answered, served
from api.loadtest import HostileCase, Phase
from common.benchreport import machine_line

ANSWER_WITHIN_S = 1.0  # the overload target: every request answered (served or refused) within this
P95_TARGET_MS = 20.0


def _ms(values: np.ndarray, q: float) -> str:
    return f"{np.percentile(values, q) * 1e3:.1f}" if len(values) else "-"


def phase_row(phase: Phase) -> str:
    r = phase.results
    ok, refused = r.latencies_of(served), r.latencies_of(lambda s: s == 503)
    every = r.latencies_of(answered)
    within = sum(1 for s, t in zip(r.statuses, r.latencies) if answered(s) and t <= ANSWER_WITHIN_S)
    offered = f"{phase.offered:.0f}" if phase.offered else "closed loop"
    top = f"{every.max() * 1e3:.0f}" if len(every) else "-"
    return (f"| {phase.name} | {offered} | {r.sent} | {r.count(served) / r.seconds:.1f} "
            f"| {r.count(lambda s: s == 503)} | {r.count(lambda s: s == 429)} "
            f"| {r.count(lambda s: s >= 500 and s != 503)} | {r.count(lambda s: s == 0)} "
            f"| {_ms(ok, 50)} | {_ms(ok, 95)} | {_ms(ok, 99)} | {_ms(refused, 95)} | {top} "
            f"| {within / r.sent:.2%} | {r.max_lag_s * 1e3:.0f} |")


def report_body(phases: list[Phase], fuzzed: dict | None, abused: list[HostileCase] | None, info: dict,
                batch_rows: int, capacity: float, workers: int | None, serving) -> str:
    """``workers``: how many the script started, None for a running API it was pointed at."""
    load = os.getloadavg()
    lines = [
        "## API load test (`scripts/load_test.py`)",
        "",
        machine_line() + f" Load average before the run: {load[0]:.1f} (other work shares the cores).",
        "",
        f"POST /predict on 127.0.0.1, {batch_rows} real feature row(s) per request; model "
        f"`{info.get('model_name')}` version {info.get('model_version')} (variant {info.get('model_variant')})"
        + (f"; {workers} uvicorn worker(s) started by the script" if workers is not None else "")
        + f"; queue of {serving.max_queue} per worker, wait at most {serving.max_queue_wait_s:g} s (config). "
        "The load generator (asyncio, keep-alive connections) shares the machine's cores with the server. "
        "Latency is measured by the client from when each request was due (open loop) to its answer. "
        "Phases up to 4x run with the rate limiter above the offered load.",
        "",
        "| phase | offered req/s | sent | goodput (200/s) | 503 | 429 | other 5xx | no answer | p50 ms | p95 ms "
        "| p99 ms | 503 p95 ms | max ms | answered within 1 s | client lag ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[phase_row(p) for p in phases],
        "",
        f"Capacity (goodput of the closed-loop probe, used for 1x/2x/4x): **{capacity:.0f} requests a second**.",
        "",
        "Targets:",
    ]
    target = next((p for p in phases if p.name.startswith("target")), None)
    if target is not None:
        r = target.results
        p95 = np.percentile(r.latencies_of(served), 95) * 1e3 if r.count(served) else float("nan")
        met = p95 < P95_TARGET_MS and r.count(served) == r.sent
        lines.append(f"- p95 < {P95_TARGET_MS:g} ms at {target.offered:g} one-row requests a second: "
                     f"{'met' if met else 'not met'} (p95 {p95:.1f} ms, {r.count(served)}/{r.sent} served).")
    top = max((p for p in phases if p.name.startswith("overload")), key=lambda p: p.offered or 0, default=None)
    if top is not None:
        r = top.results
        late = sum(1 for s, t in zip(r.statuses, r.latencies) if not answered(s) or t > ANSWER_WITHIN_S)
        lines.append(f"- at {top.name.split()[-1]} ({top.offered:.0f} req/s) every request answered within "
                     f"{ANSWER_WITHIN_S:g} s, served or refused: {'met' if late == 0 else 'not met'} "
                     f"({late} of {r.sent} later or unanswered).")
    five = sum(p.results.count(lambda s: s >= 500 and s != 503) for p in phases)
    lines.append(f"- no 5xx other than load shedding's 503 in these phases: {'met' if five == 0 else 'not met'} "
                 f"({five}).")
    if fuzzed is not None:
        if "error" in fuzzed:
            lines.append(f"- schemathesis: not run ({fuzzed['error']}).")
        else:
            count5 = sum(n for code, n in fuzzed["statuses"].items() if code.startswith("5"))
            total = sum(fuzzed["statuses"].values())
            lines.append(f"- zero 5xx in a schemathesis run over HTTP ({total} requests, answers by status "
                         f"{dict(sorted(fuzzed['statuses'].items()))}, {fuzzed['seconds']:.0f} s): "
                         f"{'met' if count5 == 0 and fuzzed['exit'] == 0 else 'not met'} ({count5} 5xx).")
    if abused:
        lines += ["", "Hostile clients (a second API started with the configured rate limit):", "",
                  "| case | outcome | server memory |", "|---|---|---|",
                  *[f"| {c.case} | {c.outcome} | {c.memory or '-'} |" for c in abused]]
        lines.append("")
        lines.append("- zero 5xx in the hostile cases (a flood's own 503s aside): "
                     f"{'met' if not any(c.errors_5xx for c in abused) else 'not met'}.")
        good = next((c.good_served for c in abused if c.good_served is not None), None)
        if good is not None:
            lines.append(f"- the good client fully served during the flood: "
                         f"{'met' if good[0] == good[1] else 'not met'} (good client: {good[0]}/{good[1]} served).")
    lines += ["", "Rerun: `make load-test` (or `make bench`), or `.venv/bin/python scripts/load_test.py --help`."]
    return "\n".join(lines)

