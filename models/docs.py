"""The model card (Markdown) and the one-page scoping brief (PDF), written from a run's figures.

Nothing here holds a number of its own: every figure comes from the training summary, the
independent check and the drift summary, so the documents cannot drift from the run. Both open
with the walk-forward verdict and its interval, then the alert rate and precision.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from models.forecast import LABELS
from models.summary import product_lines, verdict
from models.walkforward import REFERENCE


def _ci(ci: list[float]) -> str:
    return f"{ci[0]:.2f} to {ci[1]:.2f}"


def _walk_rows(summary: dict[str, Any]) -> list[str]:
    wf = summary["walk_forward"]
    rows = ["| model | PR-AUC / persistence | 90 % interval (days) | folds above | alert rate | precision | "
            "x positive rate | Brier skill |", "|---|---|---|---|---|---|---|---|"]
    for name in wf["families"]:
        f = wf["summary"][name]
        star = " (selected)" if name == summary["selected"] else ""
        rows.append(f"| {LABELS.get(name, name)}{star} | {f['gm_ratio']:.2f}x | "
                    f"{'reference' if name == REFERENCE else _ci(f['gm_ratio_ci90'])} | "
                    f"{f['folds_above_reference']}/{len(wf['folds'])} | {f['alert_rate']:.3f} | {f['precision']:.3f} | "
                    f"{f['precision_lift']:.1f} | {f['brier_skill']:+.2f} |")
    return rows


def _fold_rows(summary: dict[str, Any]) -> list[str]:
    wf = summary["walk_forward"]
    fams = wf["families"]
    rows = ["| fold | first row (UTC) | last row (UTC) | rows | positive rate | " + " | ".join(fams) + " |",
            "|---" * (5 + len(fams)) + "|"]
    for fold in wf["folds"]:
        rows.append(f"| {fold['fold']} | {fold['test']['start'][:16].replace('T', ' ')} | "
                    f"{fold['test']['end'][:16].replace('T', ' ')} | {fold['test']['rows']:,} | "
                    f"{fold['positive_rate']:.3f} | " + " | ".join(f"{fold['models'][f]['pr_auc']:.3f}" for f in fams) + " |")
    return rows


def model_card(summary: dict[str, Any], check: dict[str, Any] | None, drift: dict[str, Any] | None) -> str:
    """docs/model_card_v1.md as text."""
    sel = summary["selected"]
    reg = (summary.get("mlflow") or {}).get("registry")
    data = summary["data"]
    split = summary["split"]
    expected = summary["models"][sel]["expected_alerts"]
    lines = [
        "# Model card: volatility-spike alerts, v1",
        "",
        f"**{verdict(summary)[0]}**",
        "",
        verdict(summary)[1],
        "",
    ]
    if check:
        lines += [check["sentences"][0], ""]
    lines += [
        f"_Written by `scripts/generate_docs.py` from the training run of {summary['trained_at']} "
        "(models/artifacts/summary.json), reports/check_other_days.json and reports/evidently/summary.json. "
        "Rerun `make demo` to refresh every figure below._",
        "",
        "## Model details",
        "",
        f"- Task: for each ticker update of a product at time t, forecast `{summary['sigma_column']}` (the standard "
        f"deviation of midprice log returns over (t, t + {summary['horizon_s']:g} s]) and the probability that it "
        "reaches tau, the product's spike threshold. Both are served: `sigmas` and `scores` in `/predict`, `sigma` "
        "and `score` in `ticks.predictions`.",
        f"- Selected model: **{LABELS.get(sel, sel)}** (`{sel}`): {summary['selection_rule']}, among "
        + ", ".join(LABELS.get(n, n) for n in summary["walk_forward"]["families"]) + " (fixed in advance).",
        "- How it scores: a forecast mu of log sigma_future; z = (mu - log tau of the product) / the spread of the "
        "training residuals; P(spike) = a logistic map of z fitted on the validation part (calibrated, same ranking).",
        f"- Alerts: {summary['models'][sel]['threshold_rule']}. Alert budget {expected['budget']:.0%} "
        "(`models.alert_budget`).",
        (f"- Registry: `{reg['model_name']}` version {reg['version']}, alias `@{reg['alias']}`: {reg['reason']}. "
         "`@champion` moves only when the new model's walk-forward ratio is at least the champion's on the same folds."
         if reg else "- Registry: not registered (trained with --no-mlflow)."),
        "- Files: `models/artifacts/<model>/model.skops` and `model.json` (features, tau per product, threshold, "
        "expected alerts, walk-forward figures, data ranges); the rollback baseline `models/artifacts/zscore` alerts "
        "at the same budget.",
        "",
        "## What to expect from the alerts",
        "",
        f"At the budget, on walk-forward folds the model had not seen: alerts on **{expected['alert_rate']:.1%}** of "
        f"rows, precision **{expected['precision']:.3f}** ({expected['precision_lift']:.1f}x the positive rate of "
        f"{expected['positive_rate']:.3f}), recall {expected['recall']:.0%}. A fixed threshold alerts more in wilder "
        "markets: the alert rate follows volatility, not the budget, once the market moves away from the validation "
        "period. `/version` states these figures for the served model.",
        "",
        *[f"- {line}" for line in product_lines(summary)],
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
        f"- Training table `{data['table']}`: {data['labeled_rows']:,} rows with a known future volatility, "
        f"{', '.join(data['products'])}, days {', '.join(data['days'])}: the Coinbase Exchange feed `ticker` "
        "channel (`data/sample/exchange-2025-11/`), replayed through the project's one feature module.",
        f"- Label: spike = 1 when `{summary['sigma_column']}` >= tau of the row's product, the "
        f"{summary['tau_percentile']:g}th percentile on the train part: "
        + ", ".join(f"{p} {t:.3g}" for p, t in summary["taus"].items())
        + f"; any other product: {summary['tau']:.3g} (all train rows).",
        f"- Inputs ({len(summary['features'])}, scale-free, the same for every product): "
        + ", ".join(f"`{f}`" for f in summary["features"]) + ".",
        f"- Served models: fitted on {split['train']['rows']:,} rows up to {split['train']['end'][:16]} UTC; "
        f"probability map and alert threshold from the {split['validation']['rows']:,} rows after a "
        f"{summary['embargo_s']:g} s embargo ({split['validation']['start'][:16]} to {split['validation']['end'][:16]}).",
        "",
        "## Walk-forward across days",
        "",
        "Rolling origin: each fold is scored once by models fitted on the rows before it; the last share of those "
        "sets the probability map and the alert threshold; an embargo at every cut. The headline is the geometric "
        "mean over folds of PR-AUC divided by persistence's, with a bootstrap over whole UTC days.",
        "",
        *_walk_rows(summary),
        "",
        *_fold_rows(summary),
        "",
    ]
    if check:
        lines += ["## Independent check: other days, other recorders", "",
                  "Captures that never took part in training or in any choice, scored once the model was fixed "
                  "(`scripts/check_other_days.py`):", "",
                  "| group | days | rows | labels | positive rate | PR-AUC model | PR-AUC persistence | ratio | "
                  "alert rate | precision | x positive rate |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for g in check["groups"]:
            for key, what in (("served_tau", "served tau"), ("own_tau", "own percentile")):
                x = g[key]
                lines.append(f"| {g['name']} | {g['days'][0]} .. {g['days'][-1]} | {g['rows']:,} | {what} | "
                             f"{x['model']['positive_rate']:.3f} | {x['model']['pr_auc']:.3f} | "
                             f"{x['reference']['pr_auc']:.3f} | {x['ratio']:.2f} | {x['model']['alert_rate']:.3f} | "
                             f"{x['model']['precision']:.3f} | {x['model']['precision_lift']:.1f} |")
        lines += ["", *[f"- {line}" for line in check["sentences"]], ""]
    if drift:
        lines += ["## Drift", "", *[f"- {line}" for line in drift.get("sentences", [])],
                  "- Reports: `reports/evidently/*.html` (each headed by its reference and current windows) and "
                  "`summary.json`.", ""]
    lines += [
        "## Limits",
        "",
        "- Few days: the walk-forward spans the days in the table; its interval resamples whole days, so with a "
        "handful of days it is wide and coarse. Positive rates per fold swing with the market (see the fold table); "
        "folds with almost no spikes give noisy ratios.",
        "- Feeds: training used the Exchange feed (one ticker per trade); the live service reads Advanced Trade. "
        "Per-tick volatility depends on the feed; the features are scale-free and the check above measures "
        "the transfer, but tau is a level learned on the training feed.",
        "- The label measures quote flicker as well as price moves (most midprice moves coincide with a spread "
        "change); the spread features let the model see it, the label is kept as defined.",
        "- Rows are ticks, not time steps: busy minutes contribute more rows than quiet ones.",
        "",
        "## Ethical considerations",
        "",
        "- Analysis and alerting only; no trading. A false alarm costs attention; a missed spike is not a loss the "
        "model is responsible for, because no decision is automated on it.",
        "- Public market data only; no personal data is collected or stored.",
        "- Reports state the figures as measured, including where a model fails to beat persistence or a check "
        "is not met.",
        "",
        "## Reproduce",
        "",
        "```",
        "make demo",
        ".venv/bin/python scripts/check_other_days.py",
        "make mlflow-ui   # the UI on the run's store; open the address it prints",
        "```",
        "",
        f"_Card written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC._",
        "",
    ]
    return "\n".join(lines)


def scoping_brief(summary: dict[str, Any], check: dict[str, Any] | None, out: Path) -> None:
    """One page: use case, the 60 s goal, the success metric with this run's figures, risks."""
    base = getSampleStyleSheet()
    h = ParagraphStyle("h", parent=base["Heading3"], spaceBefore=5, spaceAfter=2)
    body = ParagraphStyle("b", parent=base["BodyText"], fontSize=8.8, leading=11.2)
    sel = summary["selected"]
    horizon = f"{summary['horizon_s']:g}"
    products = ", ".join(summary["data"]["products"])
    story: list[Any] = [
        Paragraph("Scoping brief: real-time volatility-spike alerts", base["Title"]),
        *[Paragraph(line, body) for line in verdict(summary)[:2]],
        Paragraph("Use case", h),
        Paragraph(
            f"Risk and market-monitoring analysts want an early warning when the next minute of a crypto pair ({products} "
            "so far) is about to be unusually volatile, from the public Coinbase ticker stream, so they can watch "
            "closely, annotate, or tighten monitoring. The output is a forecast volatility, a probability and an alert "
            "for analysis; it does not trade.", body),
        Paragraph(f"The {horizon} s goal", h),
        Paragraph(
            f"At every ticker update, forecast the standard deviation of midprice log returns over the next {horizon} s "
            f"and the probability that it reaches tau, the product's {summary['tau_percentile']:g}th percentile in the "
            "training data. Alerts fire on a budgeted share of rows. Every feature is computed incrementally from "
            "past ticks only.", body),
        Paragraph("Success metric", h),
        Paragraph(
            "PR-AUC against persistence (the next minute looks like the last one), across days by walk-forward, "
            "as the geometric mean of the ratio with a day-level bootstrap interval, always beside the positive rate; "
            "and the precision of the alerts at the budget against the positive rate. Success = above persistence "
            "across days, and on captures of other days from other recorders.", body),
    ]
    wf = summary["walk_forward"]
    rows = [["model", "PR-AUC / persistence", "90 % interval", "alert rate", "precision", "x pos. rate"]]
    for n in wf["families"]:
        f = wf["summary"][n]
        rows.append([LABELS.get(n, n) + (" (selected)" if n == sel else ""), f"{f['gm_ratio']:.2f}x",
                     "reference" if n == REFERENCE else _ci(f["gm_ratio_ci90"]), f"{f['alert_rate']:.3f}",
                     f"{f['precision']:.3f}", f"{f['precision_lift']:.1f}"])
    t = Table(rows, colWidths=[6.2 * cm, 2.8 * cm, 2.4 * cm, 1.8 * cm, 1.8 * cm, 1.8 * cm])
    t.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 8), ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
                           ("GRID", (0, 0), (-1, -1), 0.3, colors.grey), ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
                           ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7"))]))
    story += [Spacer(1, 3), t, Spacer(1, 3)]
    if check:
        story.append(Paragraph(check["sentences"][0], body))
    risks = [
        "Regime shifts: tau is a level learned on the training days; a wilder market alerts more than the budget "
        "(the walk-forward alert rate shows how much). Mitigation: retrain on recent days; watch the calibrated drift "
        "reports.",
        "Few days: intervals resample whole days, so they stay wide until more days are recorded.",
        "Leakage: labels look 60 s ahead; a random split would leak the future into training. Walk-forward in time "
        "order with an embargo, tau from train only, thresholds from validation only, the check data never used.",
        "Feeds and gaps: windows never cross a segment start; features are scale-free so products and feeds share "
        "one model.",
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
                      bottomMargin=1.2 * cm, title="Scoping brief: volatility-spike alerts").build(story)
