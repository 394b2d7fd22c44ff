"""The evaluation report: the walk-forward verdict first, then alerts, calibration, folds, products.

Reads the training run (summary.json and the walk-forward predictions beside the models),
rescores the validation part with the saved models (and says so if the figures disagree with
the training run's), and adds the independent check and the drift measurements when their
JSON files are given.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from models import plots
from models.artifacts import PREDICTIONS_FILE, SUMMARY_FILE, LoadedModel, load_model
from models.forecast import BASELINES, LABELS
from models.data import TableError, labeled_rows, read_table
from models.metrics import evaluate
from models.summary import product_lines, verdict
from models.walkforward import REFERENCE, labels_for

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Everything the PDF shows."""

    summary: dict[str, Any]
    models: dict[str, LoadedModel]
    predictions: pd.DataFrame
    validation: pd.DataFrame
    validation_labels: np.ndarray
    validation_metrics: dict[str, dict[str, float]]
    check: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    mismatches: list[str] = field(default_factory=list)


def _read_json(path: Path | None, what: str) -> dict[str, Any] | None:
    if path is None:
        return None
    if not path.is_file():
        log.warning("%s %s not found: its page is left out", what, path)
        return None
    return json.loads(path.read_text())


def evaluate_artifacts(artifacts: Path, features_path: Path, check_path: Path | None = None,
                       drift_path: Path | None = None) -> Evaluation:
    """Load the run in ``artifacts``, rescore its validation part from ``features_path``."""
    summary_file = artifacts / SUMMARY_FILE
    if not summary_file.is_file():
        raise TableError(f"{summary_file}: no training summary; run models/train.py first")
    summary = json.loads(summary_file.read_text())
    if "walk_forward" not in summary:
        raise TableError(f"{summary_file}: written by an older version without the walk-forward; retrain")
    pred_file = artifacts / PREDICTIONS_FILE
    if not pred_file.is_file():
        raise TableError(f"{pred_file}: the walk-forward predictions are missing; retrain with models/train.py")
    models = {name: load_model(artifacts / name) for name in summary["models"]}
    sigma_col = summary["sigma_column"]
    table = labeled_rows(read_table(features_path, [*summary["features"], sigma_col]), sigma_col, str(features_path))
    rng = summary["split"]["validation"]
    validation = table[(table["ts"] >= pd.Timestamp(rng["start"])) & (table["ts"] <= pd.Timestamp(rng["end"]))]
    validation = validation.reset_index(drop=True)
    if len(validation) != rng["rows"]:
        raise TableError(f"{features_path}: the stored validation range holds {len(validation)} rows, the run had "
                         f"{rng['rows']}; evaluate the table the models were trained on")
    y = labels_for(validation, sigma_col, summary["taus"], summary["tau"])
    metrics = {n: evaluate(y, m.score(validation), m.threshold) for n, m in models.items()}
    ev = Evaluation(summary, models, pd.read_parquet(pred_file), validation, y, metrics,
                    _read_json(check_path, "independent check"), _read_json(drift_path, "drift summary"))
    for n in models:
        stored = summary["models"][n]["metrics"]["validation"]["pr_auc"]
        if not np.isclose(stored, metrics[n]["pr_auc"], rtol=1e-6, atol=1e-9):
            ev.mismatches.append(f"{n} validation PR-AUC {metrics[n]['pr_auc']:.4f} vs {stored:.4f} at training")
    return ev


def public(ev: Evaluation) -> dict[str, Any]:
    """The JSON written beside the PDF (the model card quotes it)."""
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "selected": ev.summary["selected"], "taus": ev.summary["taus"], "alert_budget": ev.summary["alert_budget"],
        "verdict": verdict(ev.summary), "products": product_lines(ev.summary),
        "walk_forward": ev.summary["walk_forward"]["summary"], "validation_metrics": ev.validation_metrics,
        "check": ev.check and {k: ev.check[k] for k in ("verdict", "sentences")},
        "mismatches": ev.mismatches, "registry": (ev.summary.get("mlflow") or {}).get("registry"),
    }


# ---- drawing -------------------------------------------------------------------------------

def _png(fig: plt.Figure, width_cm: float) -> Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    w, h = fig.get_size_inches()
    return Image(buf, width=width_cm * cm, height=width_cm * cm * h / w)


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    return {
        "title": base["Title"],
        "h2": ParagraphStyle("h2", parent=base["Heading2"], spaceBefore=6, spaceAfter=4),
        "body": ParagraphStyle("body", parent=base["BodyText"], fontSize=9, leading=12),
        "small": ParagraphStyle("small", parent=base["BodyText"], fontSize=7.5, leading=9.5, textColor=colors.grey),
        "verdict": ParagraphStyle("verdict", parent=base["BodyText"], fontSize=9.5, leading=12.5,
                                  backColor=colors.HexColor("#fff4e5"), borderPadding=4, spaceAfter=6),
    }


def _table(rows: list[list[Any]], widths: list[float], highlight: list[int] | None = None) -> Table:
    t = Table(rows, colWidths=[w * cm for w in widths], repeatRows=1)
    style = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 7.5),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7")),
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#b0b0b0")),
        ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]
    for r in highlight or []:
        style.append(("BACKGROUND", (0, r), (-1, r), colors.HexColor("#eaf5ea")))
    t.setStyle(TableStyle(style))
    return t


def _ci(ci: list[float]) -> str:
    return f"{ci[0]:.2f} to {ci[1]:.2f}" if np.all(np.isfinite(ci)) else "n/a"


def _first_page(ev: Evaluation, s: dict[str, ParagraphStyle]) -> list[Any]:
    summ = ev.summary
    wf = summ["walk_forward"]
    sel = summ["selected"]
    story: list[Any] = [Paragraph("Volatility-spike alerts: model evaluation", s["title"])]
    story += [Paragraph(line, s["verdict"]) for line in verdict(summ)]
    if ev.check:
        story += [Paragraph(line, s["verdict"]) for line in ev.check["sentences"][:1]]
    rows = [["model", "PR-AUC / persistence", "90 % interval (days)", "folds above", "alert rate", "precision",
             "x pos. rate", "recall", "Brier skill"]]
    highlight = []
    for name in wf["families"]:
        f = wf["summary"][name]
        rows.append([LABELS.get(name, name) + (" *" if name == sel else ""), f"{f['gm_ratio']:.2f}x",
                     _ci(f["gm_ratio_ci90"]) if name != REFERENCE else "reference",
                     f"{f['folds_above_reference']}/{len(wf['folds'])}", f"{f['alert_rate']:.3f}",
                     f"{f['precision']:.3f}", f"{f['precision_lift']:.1f}", f"{f['recall']:.2f}",
                     f"{f['brier_skill']:+.2f}"])
        if name == sel:
            highlight.append(len(rows) - 1)
    story += [Spacer(1, 4), _table(rows, [5.2, 2.3, 2.6, 1.6, 1.5, 1.5, 1.4, 1.2, 1.5], highlight)]
    days = sorted({d for fold in wf["folds"] for d in fold["days"]})
    data = summ["data"]
    story.append(Paragraph(
        f"* selected: {summ['selection_rule']}"
        + (f"; registered as {summ['mlflow']['registry']['model_name']} version {summ['mlflow']['registry']['version']} "
           f"(@{summ['mlflow']['registry']['alias']}: {summ['mlflow']['registry']['reason']})" if summ.get("mlflow") else "")
        + f". Walk-forward: {len(wf['folds'])} folds over {', '.join(days)}; the first "
          f"{wf['settings']['initial_share']:.0%} of labeled rows only train; each fold is scored by models fitted on "
          f"the rows before it (the last {wf['settings']['validation_share']:.0%} of those set the probability map and "
          f"the alert threshold), with a {wf['settings']['embargo_s']:g} s embargo at every cut. Interval: "
          f"{wf['settings']['bootstrap_draws']} resamples of whole UTC days. Alert rate, precision and recall pool every "
          "fold's rows at that fold's threshold.", s["small"]))
    story.append(Paragraph("Data, label and alert budget", s["h2"]))
    story.append(Paragraph(
        f"Trained on <b>{data['table']}</b>: {data['labeled_rows']:,} labeled rows of {', '.join(data['products'])} "
        f"over {', '.join(data['days'])}. Label: spike = 1 when {summ['sigma_column']} (std of the next "
        f"{summ['horizon_s']:g} s of midprice log returns) reaches tau of the row's product, its "
        f"{summ['tau_percentile']:g}th percentile on the train part: "
        + ", ".join(f"{p} {t:.3g}" for p, t in summ["taus"].items())
        + f" (other products: {summ['tau']:.3g}). Alerts fire on the top {summ['alert_budget']:.0%} of validation rows "
          "(the alert budget), never at the best F1. The served models were fitted on "
          f"{summ['split']['train']['rows']:,} rows up to {summ['split']['train']['end'][:16]} and calibrated on the "
          f"{summ['split']['validation']['rows']:,} rows after it.", s["body"]))
    story.append(Paragraph("Per product (selected model, walk-forward): " + "; ".join(product_lines(summ)) + ".",
                           s["body"]))
    if ev.mismatches:
        story.append(Paragraph("Warning: rescoring the saved models disagrees with the training run: "
                               + "; ".join(ev.mismatches), s["verdict"]))
    return story


def _folds_page(ev: Evaluation, s: dict[str, ParagraphStyle]) -> list[Any]:
    wf = ev.summary["walk_forward"]
    sel = ev.summary["selected"]
    fams = wf["families"]
    story: list[Any] = [Paragraph("Every fold: PR-AUC beside the positive rate", s["h2"])]
    rows = [["fold", "first row (UTC)", "last row", "rows", "pos. rate", *[f"{f}" for f in fams], f"{sel} / pers."]]
    for fold in wf["folds"]:
        m = fold["models"]
        rows.append([fold["fold"], fold["test"]["start"][:16].replace("T", " "), fold["test"]["end"][:16].replace("T", " "),
                     f"{fold['test']['rows']:,}", f"{fold['positive_rate']:.3f}", *[f"{m[f]['pr_auc']:.3f}" for f in fams],
                     f"{m[sel]['pr_auc'] / m[REFERENCE]['pr_auc']:.2f}"])
    story.append(_table(rows, [0.9, 2.7, 2.7, 1.4, 1.4, *[1.5] * len(fams), 1.7]))
    fig, ax = plt.subplots(figsize=(10, 3.6))
    learned = {f: wf["summary"][f]["fold_ratios"] for f in fams if f != REFERENCE}
    plots.fold_ratios(ax, [f"{fold['fold']}\n{fold['test']['start'][5:10]}" for fold in wf["folds"]], learned,
                      [fold["positive_rate"] for fold in wf["folds"]], "PR-AUC ratio to persistence per fold")
    fig.tight_layout()
    story += [Spacer(1, 6), _png(fig, 17.5)]
    story.append(Paragraph("Per product (walk-forward, geometric mean over the folds where the product has spikes)",
                           s["h2"]))
    products = sorted(wf["summary"][sel]["by_product"])
    rows = [["model", *[f"{p}" for p in products]]]
    for f in fams:
        rows.append([LABELS.get(f, f), *[
            f"{wf['summary'][f]['by_product'][p]['gm_ratio']:.2f}x, prec. {wf['summary'][f]['by_product'][p]['precision']:.3f}"
            for p in products]])
    rows.append(["positive rate", *[f"{wf['summary'][sel]['by_product'][p]['positive_rate']:.3f}" for p in products]])
    story.append(_table(rows, [5.5, *[3.9] * len(products)]))
    return story


def _calibration_page(ev: Evaluation, s: dict[str, ParagraphStyle]) -> list[Any]:
    pred = ev.predictions
    fams = ev.summary["walk_forward"]["families"]
    y = pred["y"].to_numpy()
    curves = {f: (y, pred[f"p_{f}"].to_numpy()) for f in fams}
    story: list[Any] = [Paragraph("Probabilities and ranking on the walk-forward folds (pooled)", s["h2"])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    plots.calibration(axes[0], curves, "Reliability (10 equal-count bins)")
    plots.pr_curves(axes[1], curves, "Precision-recall")
    fig.tight_layout()
    story.append(_png(fig, 17.5))
    story.append(Paragraph(
        "Each model forecasts log sigma_future; P(sigma &gt;= tau) is a logistic map of how far the forecast sits "
        "above the product's tau, fitted on each fold's validation part. Points on the diagonal are calibrated. The "
        "dashed line in the right panel is the positive rate, a random ranking's precision.", s["small"]))
    sel = ev.summary["selected"]
    last = pred[pred["fold"] == pred["fold"].max()]
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.6), sharex=True)
    threshold = ev.summary["walk_forward"]["folds"][-1]["models"][sel]["threshold"]
    for ax, product in zip(axes, sorted(last["product_id"].unique())[:2]):
        part = last[last["product_id"] == product]
        plots.score_over_time(ax, part["ts"], part[f"p_{sel}"].to_numpy(), part["y"].to_numpy(), threshold,
                              f"{LABELS.get(sel, sel)} on the last fold, {product}")
    axes[0].set_xlabel("")
    fig.tight_layout()
    story += [Spacer(1, 6), _png(fig, 17.5),
              Paragraph("Red bands: rows whose next 60 s reached the product's tau. Dashed: the fold's alert threshold.",
                        s["small"])]
    return story


def _check_page(check: dict[str, Any], s: dict[str, ParagraphStyle]) -> list[Any]:
    story: list[Any] = [Paragraph("Independent check: other days, other recorders", s["h2"])]
    story += [Paragraph(line, s["verdict"]) for line in check["sentences"]]
    rows = [["group", "days", "rows", "labels", "pos. rate", "PR-AUC model", "PR-AUC pers.", "ratio", "alert rate",
             "precision", "x pos. rate"]]
    for g in check["groups"]:
        for key, what in (("served_tau", "served tau"), ("own_tau", "own pct")):
            x = g[key]
            rows.append([g["name"][:26], f"{g['days'][0][5:]}..{g['days'][-1][5:]}", f"{g['rows']:,}", what,
                         f"{x['model']['positive_rate']:.3f}", f"{x['model']['pr_auc']:.3f}",
                         f"{x['reference']['pr_auc']:.3f}", f"{x['ratio']:.2f}", f"{x['model']['alert_rate']:.3f}",
                         f"{x['model']['precision']:.3f}", f"{x['model']['precision_lift']:.1f}"])
    story.append(_table(rows, [3.9, 1.9, 1.3, 1.5, 1.3, 1.6, 1.6, 1.1, 1.4, 1.4, 1.4]))
    story.append(Paragraph(
        "These captures never took part in training or in any choice (features, model family, settings, budget): "
        "they were replayed and scored once the model was fixed. Other recorders: flat ticker records stamped "
        "with the recorder's clock, and Advanced Trade frames, where training used the Exchange feed. Re-run with "
        "scripts/check_other_days.py.", s["small"]))
    return story


def _drift_page(drift: dict[str, Any], s: dict[str, ParagraphStyle]) -> list[Any]:
    story: list[Any] = [Paragraph("Drift that means something", s["h2"])]
    cal = drift.get("calibration") or {}
    if cal:
        story.append(Paragraph(
            f"A column drifts when its Wasserstein distance to the training rows (in reference standard deviations) "
            f"exceeds the {cal['column_quantile']:.0%} quantile of its distances between {cal['window_minutes']:g}-minute "
            f"windows of the training rows themselves; a window drifts when at least {cal['dataset_share']:.0%} of the "
            f"{len(cal['thresholds'])} model columns do. Label columns are left out.", s["body"]))
    for line in drift.get("sentences", []):
        story.append(Paragraph(line, s["verdict"]))
    return story


def _models_page(ev: Evaluation, s: dict[str, ParagraphStyle]) -> list[Any]:
    summ = ev.summary
    story: list[Any] = [Paragraph("The served models", s["h2"])]
    rows = [["model", "threshold", "validation: PR-AUC", "pos. rate", "alert rate", "precision", "Brier skill"]]
    for name, m in ev.validation_metrics.items():
        rows.append([LABELS.get(name, name), f"{ev.models[name].threshold:.4f}", f"{m['pr_auc']:.3f}",
                     f"{m['positive_rate']:.3f}", f"{m['alert_rate']:.3f}", f"{m['precision']:.3f}",
                     f"{m['brier_skill']:+.2f}"])
    story.append(_table(rows, [5.5, 1.8, 2.4, 1.6, 1.8, 1.8, 1.8]))
    story.append(Paragraph(
        "On the validation part the threshold was chosen there, so its alert rate is the budget by construction; "
        "expect the walk-forward figures on page 1 instead.", s["small"]))
    learned = [n for n in ev.models if n not in BASELINES]
    if learned:
        fig, axes = plt.subplots(1, len(learned), figsize=(5.2 * len(learned), 4.0))
        for ax, name in zip(np.atleast_1d(axes), learned):
            plots.importance(ax, summ["models"][name]["importance"],
                             f"{LABELS[name]}: " + ("|coefficient| (standardized)" if name == "har" else "gain"))
        fig.tight_layout()
        story += [Spacer(1, 6), _png(fig, 17.5)]
    return story


def build_pdf(ev: Evaluation, out: Path) -> int:
    """Write the PDF; returns the number of pages."""
    s = _styles()
    story = _first_page(ev, s)
    for page in (_folds_page(ev, s), _calibration_page(ev, s)):
        story += [PageBreak(), *page]
    if ev.check:
        story += [PageBreak(), *_check_page(ev.check, s)]
    if ev.drift:
        story += [PageBreak(), *_drift_page(ev.drift, s)]
    story += [PageBreak(), *_models_page(ev, s)]
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = SimpleDocTemplate(str(out), pagesize=A4, leftMargin=1.4 * cm, rightMargin=1.4 * cm,
                            topMargin=1.3 * cm, bottomMargin=1.3 * cm, title="Volatility-spike model evaluation",
                            author="volspike")
    pages = {"n": 0}

    def footer(canvas: Any, doc: Any) -> None:
        pages["n"] = doc.page
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.grey)
        canvas.drawString(1.4 * cm, 0.8 * cm, f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
        canvas.drawRightString(A4[0] - 1.4 * cm, 0.8 * cm, f"page {doc.page}")

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return pages["n"]
