"""The independent check: the served model on captures of other days, from other recorders.

Nothing here feeds back into training: the captures are replayed through the same feature
module, scored by the saved models as they are, and compared with persistence (the saved
persistence baseline, which ranks rows by rv_60s). The criteria are fixed in advance:

* the model's PR-AUC above persistence's on each group of days;
* their ratio at least ``MIN_GM_RATIO`` on the geometric mean over the groups;
* alerts (at the served threshold) at least ``MIN_LIFT`` times as precise as the positive rate.

Labels use the served tau of each row's product, as the live service would. The same figures
against each group's own percentile of future volatility are reported beside them (ranking
only: a live system does not know a day's distribution in advance).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.config import REPO_ROOT, Config
from features.labels import sigma_column
from features.replay import expand_inputs, replay
from models.artifacts import LoadedModel
from models.data import TableError, labeled_rows
from models.metrics import evaluate, geometric_mean
from models.walkforward import REFERENCE, labels_for

MIN_GM_RATIO = 1.15
MIN_LIFT = 1.5
# Captures of other days by other recorders than the training data's; never used for training or choices.
OTHER_DAYS = {
    "btcusd-2025-12 (flat records)": [str(REPO_ROOT / "data/sample/btcusd-2025-12/*.ndjson.gz")],
    "btcusd-2026-04-05 (frames)": [str(REPO_ROOT / "data/sample/btcusd-2026-04-05-frames/*.ndjson.gz")],
}


def replay_group(patterns: list[str], cfg: Config) -> pd.DataFrame:
    """Labeled feature rows of a group of captures (replayed with the configured feature module)."""
    table, _ = replay(expand_inputs(patterns), cfg.features, cfg.label.horizon_s)
    return labeled_rows(table, sigma_column(cfg.label.horizon_s), ", ".join(patterns))


def score_group(name: str, table: pd.DataFrame, model: LoadedModel, reference: LoadedModel,
                sigma_col: str) -> dict[str, Any]:
    """Both models on one group, at the served tau and at the group's own percentile."""
    taus = model.meta.get("taus") or {}
    pct = float(model.meta.get("tau_percentile", 90))
    p_model, p_ref = model.score(table), reference.score(table)
    out: dict[str, Any] = {
        "name": name, "rows": int(len(table)), "products": sorted(table["product_id"].unique().tolist()),
        "start": table["ts"].min().isoformat(), "end": table["ts"].max().isoformat(),
        "days": sorted(table["ts"].dt.strftime("%Y-%m-%d").unique().tolist()),
        "sigma_median": float(table[sigma_col].median()),
    }
    own = {str(p): float(np.percentile(g[sigma_col], pct)) for p, g in table.groupby("product_id")}
    for key, row_taus in (("served_tau", taus), ("own_tau", own)):
        y = labels_for(table, sigma_col, row_taus, model.tau)
        m = evaluate(y, p_model, model.threshold)
        r = evaluate(y, p_ref, reference.threshold)
        out[key] = {"taus": {p: row_taus.get(p, model.tau) for p in out["products"]}, "model": m, "reference": r,
                    "ratio": m["pr_auc"] / r["pr_auc"] if r["pr_auc"] > 0 else float("nan")}
    return out


def verdict(groups: list[dict[str, Any]], model_name: str, key: str = "served_tau") -> dict[str, Any]:
    """The three criteria on the groups, and whether each is met."""
    ratios = [g[key]["ratio"] for g in groups]
    lifts = [g[key]["model"]["precision_lift"] for g in groups]
    gm = geometric_mean(np.array(ratios))
    each = all(np.isfinite(r) and r > 1 for r in ratios)
    lift_ok = all(np.isfinite(x) and x >= MIN_LIFT for x in lifts)
    return {
        "model": model_name, "labels": key, "ratios": ratios, "gm_ratio": gm, "precision_lifts": lifts,
        "above_reference_on_each_group": each, "gm_at_least": MIN_GM_RATIO, "gm_met": bool(gm >= MIN_GM_RATIO),
        "lift_at_least": MIN_LIFT, "lift_met": lift_ok, "met": bool(each and gm >= MIN_GM_RATIO and lift_ok),
    }


def sentences(result: dict[str, Any]) -> list[str]:
    """The check in words, served tau first."""
    lines = []
    for key, what in (("served_tau", "at the served tau"), ("own_tau", "at each group's own percentile (ranking only)")):
        v = result["verdict"][key]
        parts = []
        for g in result["groups"]:
            x = g[key]
            parts.append(f"{g['name']} ({', '.join(g['days'][:1])}{' .. ' + g['days'][-1] if len(g['days']) > 1 else ''}, "
                         f"{g['rows']:,} rows, positive rate {x['model']['positive_rate']:.3f}): PR-AUC "
                         f"{x['model']['pr_auc']:.3f} vs persistence {x['reference']['pr_auc']:.3f} = {x['ratio']:.2f}x; "
                         f"alerts on {x['model']['alert_rate']:.1%} of rows at precision {x['model']['precision']:.3f} "
                         f"({x['model']['precision_lift']:.1f}x the positive rate)")
        lines.append(f"Independent check {what}: " + "; ".join(parts) + f". Geometric mean {v['gm_ratio']:.2f}x. "
                     + ("All criteria met." if v["met"] else "Not met: " + ", ".join(
                         c for c, ok in (("above persistence on each group", v["above_reference_on_each_group"]),
                                         (f"geometric mean >= {v['gm_at_least']:g}x", v["gm_met"]),
                                         (f"alert precision >= {v['lift_at_least']:g}x the positive rate", v["lift_met"]))
                         if not ok) + "."))
    return lines


def run_check(groups: dict[str, list[str]], model: LoadedModel, reference: LoadedModel, cfg: Config) -> dict[str, Any]:
    """Replay and score every group; the verdict at the served tau and at the groups' own percentiles."""
    if reference.name != REFERENCE:
        raise TableError(f"the reference must be the {REFERENCE} baseline, got {reference.name}")
    sigma_col = sigma_column(cfg.label.horizon_s)
    scored = [score_group(name, replay_group(patterns, cfg), model, reference, sigma_col)
              for name, patterns in groups.items()]
    result = {"model": model.name, "model_source": model.source, "reference": reference.name,
              "threshold": model.threshold, "groups": scored, "inputs": {k: [str(Path(p)) for p in v] for k, v in groups.items()},
              "verdict": {key: verdict(scored, model.name, key) for key in ("served_tau", "own_tau")}}
    result["sentences"] = sentences(result)
    return result
