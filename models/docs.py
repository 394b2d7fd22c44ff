"""The model card (Markdown) and the one-page scoping brief (PDF), written from a run's figures.

Nothing here holds a number of its own: every figure comes from the training summary, the
evaluation JSON and the drift summary, so the documents cannot drift from the run.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from models.candidates import BASELINES, LABELS
from models.summary import other_day_verdict, verdict


def _day(ts: str) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M")


def _metrics_rows(summary: dict[str, Any]) -> list[str]:
    comp = summary["comparison"]["models"]
    rows = ["| model | part | PR-AUC | positive rate | test PR-AUC 90 % interval | ROC-AUC | F1 | precision | recall | Brier |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in summary["models"].items():
        for part in ("validation", "test"):
            x = m["metrics"][part]
            ci = f"{comp[name]['ci90'][0]:.3f} to {comp[name]['ci90'][1]:.3f}" if part == "test" else ""
            star = " (selected)" if name == summary["selected"] else ""
            rows.append(f"| {LABELS.get(name, name)}{star} | {part} | {x['pr_auc']:.3f} | {x['positive_rate']:.3f} | {ci} | "
                        f"{x['roc_auc']:.3f} | {x['f1']:.3f} | {x['precision']:.3f} | {x['recall']:.3f} | {x['brier']:.4f} |")
    return rows


def _window_lines(data: dict[str, Any]) -> list[str]:
    """Why the run uses a time window, in the run's own figures."""
    out = data.get("outside_window")
    if not out:
        return []
    return [
        f"- Why a time window: {out['rows']:,} rows of the table ({_day(out['start'])} to {_day(out['end'])} UTC) "
        f"fall outside it. Their median future volatility is {out['sigma_median']:.3g} against {data['sigma_median']:.3g} "
        f"inside the window, and at this run's tau {out['positive_rate_at_tau']:.0%} of them would be spikes. As the "
        "oldest training rows they would pull tau up towards their own level, far above what the later validation and "
        "test rows reach; the window keeps one market regime. See Limits.",
    ]


def _baseline_limit(summary: dict[str, Any], base_names: str) -> str:
    comp = summary["comparison"]["models"]
    test = {n: m["metrics"]["test"] for n, m in summary["models"].items()}
    base = [n for n in summary["models"] if n in BASELINES]
    if not base:
        return "- No baseline was trained in this run."
    rate = test[base[0]]["positive_rate"]
    chance = all(comp[b]["ci90"][0] <= rate <= comp[b]["ci90"][1] for b in base)
    head = f"- The baselines ({base_names}) rank by the current 60 s realized volatility; "
    if chance:
        return head + (f"on test they cannot be told from a random ranking (PR-AUC {test[base[0]]['pr_auc']:.3f} "
                       f"against a positive rate of {rate:.3f}), which makes beating them a low bar. Compare every "
                       "model with the positive rate too.")
    return head + f"on test they rank better than chance (PR-AUC {test[base[0]]['pr_auc']:.3f}, positive rate {rate:.3f})."


def model_card(summary: dict[str, Any], evaluation: dict[str, Any] | None, drift: dict[str, Any] | None) -> str:
    """docs/model_card_v1.md as text."""
    sel = summary["selected"]
    reg = (summary.get("mlflow") or {}).get("registry")
    split = summary["split"]
    data = summary["data"]
    lines = [
        "# Model card: volatility-spike detector, v1",
        "",
        f"_Written by `scripts/generate_docs.py` from the training run of {summary['trained_at']} "
        "(models/artifacts/summary.json), reports/model_eval.json and reports/evidently/summary.json. "
        "Rerun `make demo` to refresh every figure below._",
        "",
        "## Model details",
        "",
        f"- Task: binary classification. For each BTC-USD ticker update at time t, the probability that the standard "
        f"deviation of midprice log returns over (t, t + {summary['horizon_s']:g} s] reaches tau.",
        f"- Selected model: **{LABELS.get(sel, sel)}** (`{sel}`), chosen by the highest validation PR-AUC among "
        + ", ".join(f"{LABELS.get(n, n)}" for n in summary["models"]) + ".",
        "- Settings: " + ", ".join(f"{k}={v}" for k, v in summary["models"][sel]["params"].items())
        + f"; alert threshold: {summary['models'][sel]['threshold_rule']}.",
        (f"- Registry: `{reg['model_name']}` version {reg['version']}, alias `@{reg['alias']}` "
         f"(`@champion` only when its validation PR-AUC beats the current champion's)." if reg else
         "- Registry: not registered (trained with --no-mlflow)."),
        "- Files: `models/artifacts/<model>/model.skops` and `model.json` (features, tau, threshold, data range, "
        "metrics); loaded by `models.artifacts.load_model` from a folder or `models:/NAME@ALIAS`.",
        "",
        "## Intended use",
        "",
        "- Analysis and alerting for market-risk monitoring: flag the next minute as likely volatile so a person "
        "or a downstream system can look closer, widen monitoring, or annotate dashboards.",
        "- Users: quant and risk analysts and MLOps engineers who read the evaluation PDF and the drift reports.",
        "- **Not** for trading, order placement, position sizing or any automated financial decision, and not "
        "investment advice.",
        "",
        "## Data",
        "",
        f"- Source: Coinbase Advanced Trade public WebSocket `ticker` channel, BTC-USD, recorded captures replayed "
        f"through the project's one feature module (`features/`). Table: `{data['table']}`"
        + (f", rows from {data['since']}" if data.get("since") else "")
        + (f" until {data['until']}" if data.get("until") else "")
        + f"; {data['labeled_rows']:,} rows with a known future volatility.",
        f"- Split in time order, {', '.join(f'{f:.0%}' for f in summary['split_fractions'])} of labeled rows, "
        f"with a {summary['embargo_s']:g} s embargo before each cut ({summary['rows_dropped_by_embargo']} rows "
        "dropped) so no training label reads ticks of a later part:",
        "",
        "| part | first row (UTC) | last row (UTC) | rows | positive rate |",
        "|---|---|---|---|---|",
    ]
    first = next(iter(summary["models"].values()))["metrics"]
    for part in ("train", "validation", "test"):
        lines.append(f"| {part} | {_day(split[part]['start'])} | {_day(split[part]['end'])} | {split[part]['rows']:,} | "
                     f"{first[part]['positive_rate']:.3f} |")
    lines += [
        "",
        f"- Label: spike = 1 when `{summary['sigma_column']}` >= tau, **tau = {summary['tau']:.4g}**, the "
        f"{summary['tau_percentile']:g}th percentile of `{summary['sigma_column']}` on the train part (so about "
        f"{100 - summary['tau_percentile']:g} % of training rows are spikes). Rows whose next "
        f"{summary['horizon_s']:g} s are not fully observed (segment ends) have no label and are left out.",
        f"- Inputs ({len(summary['features'])}): " + ", ".join(f"`{f}`" for f in summary["features"]) + ". "
        "No prices, ids or times. Each window's first ticks after a segment start have no volatility yet: the "
        "logistic regression imputes the training median (then standardizes), XGBoost learns a default branch "
        "for missing values, the baselines use the training median.",
        *_window_lines(data),
        "",
        "## Metrics",
        "",
        "PR-AUC is average precision; it is always shown beside the positive rate, which is the PR-AUC of a random "
        "ranking. F1, precision and recall are at each model's own threshold. The 90 % interval comes from a block "
        f"bootstrap ({summary['comparison']['draws']} resamples of {summary['comparison']['block_s']:g} s blocks).",
        "",
        *_metrics_rows(summary),
        "",
        "### Against the baselines (plain statement)",
        "",
        *[f"- {line}" for line in verdict(summary)],
        "",
    ]
    if evaluation and evaluation.get("other_day"):
        o = evaluation["other_day"]
        lines += [
            "### Another day",
            "",
            f"`{o['path']}`: {_day(o['start'])} to {_day(o['end'])} UTC, {o['rows']:,} labeled rows, never seen in "
            f"training. Its median future volatility is {o['sigma_median']:.3g} against tau = {o['tau']:.3g}.",
            "",
            "| model | PR-AUC at training tau | positive rate | ROC-AUC | PR-AUC at the day's own tau | positive rate |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in o["models"].items():
            a, b = m["training_tau"], m["own_tau"]
            lines.append(f"| {LABELS.get(name, name)} | {a['pr_auc']:.3f} | {a['positive_rate']:.3f} | {a['roc_auc']:.3f} | "
                         f"{b['pr_auc']:.3f} | {b['positive_rate']:.3f} |")
        lines += ["", *[f"- {line}" for line in other_day_verdict(o, sel)], ""]
    if drift:
        lines += ["### Drift (Evidently)", ""]
        for r in drift.values():
            lines.append(f"- {r['name'].replace('_', ' ')}: {r['drifted_count']}/{r['columns']} columns drifted "
                         f"(share {r['drift_share']:.2f}, {r['method']} >= {r['threshold']:g}); most: "
                         + ", ".join(f"`{c}` {r['distance'][c]:.2f}" for c in r["drifted"][:5]) + ".")
        lines += ["- Reports: `reports/evidently/*.html` (open in a browser) and `*.json`.", ""]
    base_names = " and ".join(LABELS[b] for b in summary["models"] if b in BASELINES)
    lines += [
        "## Limits",
        "",
        f"- Little data: one night session of about {sum(split[p]['rows'] for p in split):,} rows; the validation part "
        f"holds {round(first['validation']['positive_rate'] * split['validation']['rows'])} spike rows in a few bursts, "
        "so the choice of model and threshold is noisy, and test intervals are wide.",
        "- Regimes: tau is an absolute level. On a more volatile day most rows exceed it (see Another day) and the "
        "alert rate explodes; tau and the threshold need re-fitting on recent data, and the drift reports should be "
        "watched.",
        _baseline_limit(summary, base_names),
        "- Rows are ticks, not time steps: busy minutes contribute more rows than quiet ones.",
        "",
        "## Ethical considerations",
        "",
        "- Analysis and alerting only; no trading. A false alarm costs attention; a missed spike is not a loss the "
        "model is responsible for, because no decision is automated on it.",
        "- Public market data only; no personal data is collected or stored.",
        "- Reports state the figures as measured, including where a model fails to beat the baselines.",
        "",
        "## Reproduce",
        "",
        "```",
        "make demo",
        "make mlflow-ui   # the UI on the run's store; open the address it prints",
        "```",
        "",
        f"_Card written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC._",
        "",
    ]
    return "\n".join(lines)


def scoping_brief(summary: dict[str, Any], evaluation: dict[str, Any] | None, out: Path) -> None:
    """One page: use case, the 60 s goal, the success metric with this run's figures, risks."""
    base = getSampleStyleSheet()
    h = ParagraphStyle("h", parent=base["Heading3"], spaceBefore=5, spaceAfter=2)
    body = ParagraphStyle("b", parent=base["BodyText"], fontSize=8.8, leading=11.2)
    sel = summary["selected"]
    test = {n: m["metrics"]["test"] for n, m in summary["models"].items()}
    rate = test[sel]["positive_rate"]
    horizon = f"{summary['horizon_s']:g}"
    story: list[Any] = [
        Paragraph("Scoping brief: real-time volatility-spike detection (BTC-USD)", base["Title"]),
        Paragraph("Use case", h),
        Paragraph(
            "Risk and market-monitoring analysts want an early warning when the next minute of BTC-USD is about to be "
            "unusually volatile, from the public Coinbase ticker stream, so they can watch closely, annotate, or tighten "
            "monitoring. The output is an alert and a probability for analysis; it does not trade.", body),
        Paragraph(f"The {horizon} s goal", h),
        Paragraph(
            f"At every ticker update, estimate the probability that the standard deviation of midprice log returns over "
            f"the next {horizon} s reaches tau, the {summary['tau_percentile']:g}th percentile of that quantity in the "
            f"training data (this run: tau = {summary['tau']:.3g}). Scoring must keep up with the live stream: every "
            "feature is computed incrementally from past ticks only.", body),
        Paragraph("Success metric", h),
        Paragraph(
            "PR-AUC on a later, untouched time window, always read against the positive rate (a random ranking's "
            "PR-AUC), and against two baselines that need no learning: persistence (the next minute looks like the "
            "last one) and a z-score rule on current volatility. Thresholds are chosen on validation only. "
            "Success = the learned model beats both baselines and chance on test, and keeps doing so on another day.", body),
    ]
    rows = [["model", "test PR-AUC", "positive rate", "ROC-AUC", "F1 at threshold"]]
    for n, m in test.items():
        rows.append([LABELS.get(n, n) + (" (selected)" if n == sel else ""), f"{m['pr_auc']:.3f}",
                     f"{m['positive_rate']:.3f}", f"{m['roc_auc']:.3f}", f"{m['f1']:.3f}"])
    t = Table(rows, colWidths=[6 * cm, 2.6 * cm, 2.6 * cm, 2.4 * cm, 2.8 * cm])
    t.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 8), ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
                           ("GRID", (0, 0), (-1, -1), 0.3, colors.grey), ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
                           ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7"))]))
    story += [Spacer(1, 3), Paragraph(
        f"This run (test window {_day(summary['split']['test']['start'])} to {_day(summary['split']['test']['end'])} "
        f"UTC, positive rate {rate:.3f}):", body), Spacer(1, 2), t, Spacer(1, 3)]
    for line in verdict(summary):
        story.append(Paragraph(line, body))
    risks = [
        "Regime shifts: tau is an absolute volatility level. "
        + (f"On another day ({evaluation['other_day']['start'][:10]}) "
           f"{evaluation['other_day']['models'][sel]['training_tau']['positive_rate']:.0%} of rows exceeded the training "
           "tau, so alerts would fire most of the time. " if evaluation and evaluation.get("other_day") else "")
        + "Mitigation: re-fit tau and thresholds on recent data; watch the Evidently drift reports.",
        "Little, bursty data: spikes come in a few bursts per hour, so validation and test hold few independent "
        "events; report intervals (block bootstrap), not just point figures.",
        "Leakage: labels look 60 s ahead; a random split would leak the future into training. Time-ordered split "
        "with an embargo, tau from train only, nothing tuned on test.",
        "Feed gaps and reconnects: windows never cross a segment start; missing values at segment starts are handled "
        "inside the models.",
        "Misuse: the output is for analysis and alerting, not trading decisions.",
    ]
    story.append(Paragraph("Risks", h))
    for r in risks:
        story.append(Paragraph("&bull; " + r, body))
    story.append(Spacer(1, 4))
    story.append(Paragraph(f"Figures from the training run of {summary['trained_at']}; regenerate with "
                           "scripts/generate_docs.py.", ParagraphStyle("s", parent=body, fontSize=7, textColor=colors.grey)))
    out.parent.mkdir(parents=True, exist_ok=True)
    SimpleDocTemplate(str(out), pagesize=A4, leftMargin=1.8 * cm, rightMargin=1.8 * cm, topMargin=1.3 * cm,
                      bottomMargin=1.2 * cm, title="Scoping brief: volatility-spike detection").build(story)
