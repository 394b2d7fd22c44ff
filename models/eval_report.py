"""The evaluation report: rescore the stored models on the stored split, draw, and build the PDF.

The models are loaded from their local artifacts and scored again on the parts rebuilt from
the stored time ranges, so the PDF shows what the saved files really do (and says so if the
figures disagree with the training run's).
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

from features.labels import spike_label
from models import plots
from models.artifacts import SUMMARY_FILE, LoadedModel, load_model
from models.candidates import BASELINES, LABELS
from models.data import TableError, labeled_rows, read_table
from models.metrics import evaluate
from models.split import parts_from_ranges
from models.summary import other_day_verdict, verdict

log = logging.getLogger(__name__)
PARTS = ("validation", "test")


@dataclass
class Evaluation:
    """Everything the PDF shows, recomputed from the artifacts."""

    summary: dict[str, Any]
    models: dict[str, LoadedModel]
    parts: dict[str, pd.DataFrame]
    labels: dict[str, np.ndarray]
    scores: dict[str, dict[str, np.ndarray]]
    metrics: dict[str, dict[str, dict[str, float]]]
    other: dict[str, Any] | None = None
    mismatches: list[str] = field(default_factory=list)


def evaluate_artifacts(artifacts: Path, features_path: Path, other_path: Path | None) -> Evaluation:
    """Load every model of the run in ``artifacts`` and score the stored split (and the other day)."""
    summary_file = artifacts / SUMMARY_FILE
    if not summary_file.is_file():
        raise TableError(f"{summary_file}: no training summary; run models/train.py first")
    summary = json.loads(summary_file.read_text())
    models = {name: load_model(artifacts / name) for name in summary["models"]}
    sigma_col = summary["sigma_column"]
    table = read_table(features_path, [*summary["features"], sigma_col])
    parts = {k: v for k, v in parts_from_ranges(labeled_rows(table, sigma_col, str(features_path)),
                                                 summary["split"]).items() if k in PARTS}
    for name, part in parts.items():
        if len(part) != summary["split"][name]["rows"]:
            raise TableError(f"{features_path}: the stored {name} range holds {len(part)} rows, the run had "
                             f"{summary['split'][name]['rows']}; evaluate the table the models were trained on")
    tau = summary["tau"]
    labels = {p: spike_label(parts[p][sigma_col], tau).to_numpy(dtype=int) for p in PARTS}
    scores = {n: {p: m.score(parts[p]) for p in PARTS} for n, m in models.items()}
    metrics = {n: {p: evaluate(labels[p], scores[n][p], models[n].threshold) for p in PARTS} for n in models}
    ev = Evaluation(summary, models, parts, labels, scores, metrics)
    for n in models:
        for p in PARTS:
            stored = summary["models"][n]["metrics"][p]["pr_auc"]
            if not np.isclose(stored, metrics[n][p]["pr_auc"], rtol=1e-6, atol=1e-9):
                ev.mismatches.append(f"{n} {p} PR-AUC {metrics[n][p]['pr_auc']:.4f} vs {stored:.4f} at training")
    if other_path is not None:
        ev.other = _other_day(models, other_path, sigma_col, tau, summary["tau_percentile"])
    return ev


def _other_day(models: dict[str, LoadedModel], path: Path, sigma_col: str, tau: float, pct: float) -> dict[str, Any]:
    """Scores on a capture from another day: at the training tau, and re-based on the day's own tau."""
    table = labeled_rows(read_table(path, [*next(iter(models.values())).features, sigma_col]), sigma_col, str(path))
    own_tau = float(np.percentile(table[sigma_col], pct))
    y = spike_label(table[sigma_col], tau).to_numpy(dtype=int)
    y_own = spike_label(table[sigma_col], own_tau).to_numpy(dtype=int)
    result: dict[str, Any] = {
        "path": str(path), "start": table["ts"].min().isoformat(), "end": table["ts"].max().isoformat(),
        "rows": int(len(table)), "tau": tau, "own_tau": own_tau, "own_tau_percentile": pct,
        "sigma_median": float(table[sigma_col].median()), "models": {},
    }
    scores = {}
    for name, m in models.items():
        s = m.score(table)
        scores[name] = s
        result["models"][name] = {"training_tau": evaluate(y, s, m.threshold), "own_tau": evaluate(y_own, s, m.threshold)}
    result["_table"], result["_labels"], result["_scores"] = table, y, scores
    return result


def public(ev: Evaluation) -> dict[str, Any]:
    """The JSON written beside the PDF (the model card quotes it)."""
    other = None
    if ev.other is not None:
        other = {k: v for k, v in ev.other.items() if not k.startswith("_")}
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tau": ev.summary["tau"], "tau_percentile": ev.summary["tau_percentile"], "split": ev.summary["split"],
        "selected": ev.summary["selected"], "metrics": ev.metrics, "comparison": ev.summary["comparison"],
        "verdict": verdict(ev.summary), "other_day": other,
        "other_day_verdict": other_day_verdict(other, ev.summary["selected"]) if other else [],
        "mismatches": ev.mismatches,
        "registry": (ev.summary.get("mlflow") or {}).get("registry"),
    }


# ---- drawing -------------------------------------------------------------------------------

def _png(fig: plt.Figure, width_cm: float) -> Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=160, bbox_inches="tight")
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
        "verdict": ParagraphStyle("verdict", parent=base["BodyText"], fontSize=9, leading=12,
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


def _fmt_range(rng: dict[str, Any]) -> tuple[str, str]:
    return (pd.Timestamp(rng["start"]).strftime("%Y-%m-%d %H:%M:%S"), pd.Timestamp(rng["end"]).strftime("%Y-%m-%d %H:%M:%S"))


def build_pdf(ev: Evaluation, out: Path) -> int:
    """Write the PDF; returns the number of pages."""
    s = _styles()
    summ = ev.summary
    story: list[Any] = []
    story.append(Paragraph("Volatility-spike detection: model evaluation", s["title"]))
    story.append(Paragraph(
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from <b>{summ['data']['table']}</b>"
        + (f" (rows since {summ['data']['since']})" if summ["data"].get("since") else "")
        + f". Label: spike = 1 when {summ['sigma_column']} (std of the next {summ['horizon_s']:g} s of midprice "
          f"log returns) &gt;= tau; <b>tau = {summ['tau']:.4g}</b>, the {summ['tau_percentile']:g}th percentile "
          f"on the train part. Split in time order ({', '.join(f'{f:.0%}' for f in summ['split_fractions'])} of "
          f"labeled rows) with a {summ['embargo_s']:g} s embargo before each cut "
          f"({summ['rows_dropped_by_embargo']} rows dropped). Thresholds and the selected model were chosen on "
          f"validation only; test was scored once.", s["body"]))
    story.append(Spacer(1, 4))
    rows = [["part", "first row (UTC)", "last row (UTC)", "rows", "spikes", "positive rate"]]
    for part in ("train", "validation", "test"):
        rng = summ["split"][part]
        start, end = _fmt_range(rng)
        rate = next(iter(summ["models"].values()))["metrics"][part]["positive_rate"]
        rows.append([part, start, end, f"{rng['rows']:,}", f"{round(rate * rng['rows']):,}", f"{rate:.3f}"])
    story.append(_table(rows, [2.2, 3.8, 3.8, 1.8, 1.6, 2.2]))
    story.append(Paragraph("Does the model beat the baselines?", s["h2"]))
    for line in verdict(summ):
        story.append(Paragraph(line, s["verdict"]))
    story.append(Paragraph("Metrics (PR-AUC always beside the positive rate)", s["h2"]))
    comp = summ["comparison"]
    rows = [["model", "part", "PR-AUC", "90 % interval", "pos. rate", "ROC-AUC", "F1", "precision", "recall",
             "Brier", "alert rate"]]
    highlight = []
    for name in ev.models:
        for part in PARTS:
            m = ev.metrics[name][part]
            label = LABELS.get(name, name) + (" *" if name == summ["selected"] else "")
            ci = comp["models"][name]["ci90"] if part == comp["part"] else None
            rows.append([label if part == "validation" else "", part, f"{m['pr_auc']:.3f}",
                         f"{ci[0]:.3f} to {ci[1]:.3f}" if ci else "", f"{m['positive_rate']:.3f}",
                         f"{m['roc_auc']:.3f}", f"{m['f1']:.3f}", f"{m['precision']:.3f}", f"{m['recall']:.3f}",
                         f"{m['brier']:.4f}", f"{m['alert_rate']:.3f}"])
            if name == summ["selected"]:
                highlight.append(len(rows) - 1)
    story.append(_table(rows, [3.5, 1.5, 1.2, 2.1, 1.3, 1.5, 1.0, 1.4, 1.1, 1.2, 1.4], highlight))
    story.append(Paragraph(
        "* selected by the highest validation PR-AUC"
        + (f" and registered as {summ['mlflow']['registry']['model_name']} version "
           f"{summ['mlflow']['registry']['version']} (@{summ['mlflow']['registry']['alias']})" if summ.get("mlflow") else "")
        + ". F1, precision, recall and alert rate are at each model's threshold: " + "; ".join(
            f"{LABELS.get(n, n)}: {summ['models'][n]['threshold_rule']}" for n in ev.models)
        + f". The 90 % intervals of test PR-AUC (and of the margins above) come from a block bootstrap: "
          f"{comp['draws']} resamples of the {comp['blocks']} blocks of {comp['block_s']:g} s in test, whole blocks "
          "at a time because neighbouring rows share most of their windows.", s["small"]))
    if ev.mismatches:
        story.append(Paragraph("Warning: rescoring the saved models disagrees with the training run: "
                               + "; ".join(ev.mismatches), s["verdict"]))

    # Page 2: ranking quality.
    story.append(PageBreak())
    story.append(Paragraph("Ranking: precision-recall and ROC curves", s["h2"]))
    fig, axes = plt.subplots(2, 2, figsize=(10, 9))
    for col, part in enumerate(PARTS):
        curves = {n: (ev.labels[part], ev.scores[n][part]) for n in ev.models}
        plots.pr_curves(axes[0, col], curves, f"Precision-recall, {part}")
        plots.roc_curves(axes[1, col], curves, f"ROC, {part}")
    fig.tight_layout()
    story.append(_png(fig, 17.5))
    story.append(Paragraph(
        "The dashed horizontal line in the PR panels is the positive rate: the precision of a random ranking. "
        "Both baselines rank rows by the current rv_60s, so their curves coincide.", s["small"]))

    # Page 3: probabilities and decisions.
    story.append(PageBreak())
    story.append(Paragraph("Calibration and decisions on test", s["h2"]))
    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    plots.calibration(ax, {n: (ev.labels["test"], ev.scores[n]["test"]) for n in ev.models},
                      "Calibration on test (10 equal-count bins)")
    fig.tight_layout()
    story.append(_png(fig, 12.5))
    ncols = 2
    nrows = (len(ev.models) + 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.5, 3.3 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for ax, name in zip(axes, ev.models):
        plots.confusion(ax, ev.metrics[name]["test"], LABELS.get(name, name))
    for ax in axes[len(ev.models):]:
        ax.axis("off")
    fig.suptitle("Confusion matrices on test at each model's threshold (counts and row shares)", fontsize=10)
    fig.tight_layout()
    story.append(_png(fig, 13.5))

    # Page 4: over time.
    story.append(PageBreak())
    story.append(Paragraph("Scores over time on test, with the true spikes", s["h2"]))
    shown = [n for n in ev.models if n != "zscore"]
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.6 * len(shown)), sharex=True)
    for ax, name in zip(np.atleast_1d(axes), shown):
        if name == "persistence":  # its probability is a near-constant map; its score is rv_60s itself
            plots.score_over_time(ax, ev.parts["test"]["ts"], ev.parts["test"]["rv_60s"].to_numpy(), ev.labels["test"],
                                  summ["tau"], f"{LABELS[name]}: the score is rv_60s, the threshold is tau",
                                  label="rv_60s", ylabel="rv_60s", threshold_label="tau")
        else:
            plots.score_over_time(ax, ev.parts["test"]["ts"], ev.scores[name]["test"], ev.labels["test"],
                                  ev.models[name].threshold, LABELS.get(name, name))
    for ax in np.atleast_1d(axes)[:-1]:
        ax.set_xlabel("")
    fig.tight_layout()
    story.append(_png(fig, 17.5))
    story.append(Paragraph("Red bands: rows whose next 60 s reached tau. The z-score rule is not drawn: its score "
                           "is the persistence score (same rv_60s, same probability map); only its threshold differs.",
                           s["small"]))

    if ev.other is not None:
        story.append(PageBreak())
        story.extend(_other_day_page(ev, s))

    story.append(PageBreak())
    story.append(Paragraph("What drives the models", s["h2"]))
    learned = [n for n in ev.models if n not in BASELINES]
    if learned:
        fig, axes = plt.subplots(1, len(learned), figsize=(5.2 * len(learned), 4.2))
        for ax, name in zip(np.atleast_1d(axes), learned):
            plots.importance(ax, summ["models"][name]["importance"],
                             f"{LABELS[name]}: " + ("|coefficient| (standardized)" if name == "logreg" else "gain"))
        fig.tight_layout()
        story.append(_png(fig, 17.5))
    rows = [["model", "setting tried", "validation PR-AUC"]]
    for name in ev.models:
        for cand in summ["models"][name]["candidates"]:
            setting = ", ".join(f"{k}={v}" for k, v in cand.items() if k != "validation_pr_auc")
            rows.append([LABELS.get(name, name), setting, f"{cand['validation_pr_auc']:.3f}"])
    story.append(Paragraph("Settings tried (the best on validation is kept)", s["h2"]))
    story.append(_table(rows, [4.5, 9.5, 3.0]))

    out.parent.mkdir(parents=True, exist_ok=True)
    doc = SimpleDocTemplate(str(out), pagesize=A4, leftMargin=1.5 * cm, rightMargin=1.5 * cm,
                            topMargin=1.4 * cm, bottomMargin=1.4 * cm, title="Volatility-spike model evaluation",
                            author="volspike")
    pages = {"n": 0}

    def footer(canvas: Any, doc: Any) -> None:
        pages["n"] = doc.page
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.grey)
        canvas.drawRightString(A4[0] - 1.5 * cm, 0.8 * cm, f"page {doc.page}")

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return pages["n"]


def _other_day_page(ev: Evaluation, s: dict[str, ParagraphStyle]) -> list[Any]:
    o = ev.other
    assert o is not None
    sel = ev.summary["selected"]
    start, end = _fmt_range(o)
    at_tau = o["models"][sel]["training_tau"]
    items: list[Any] = [Paragraph("Another day: a capture the models never saw", s["h2"])]
    items.append(Paragraph(
        f"<b>{o['path']}</b>, {start} to {end} UTC, {o['rows']:,} labeled rows. Its median future volatility is "
        f"{o['sigma_median']:.3g} against tau = {o['tau']:.3g} from training, so at the training tau "
        f"<b>{at_tau['positive_rate']:.0%} of its rows are spikes</b>: the absolute level of volatility moved, and "
        f"a fixed tau turns most of the day into alerts or misses. The second block re-bases the label on the "
        f"day's own {o['own_tau_percentile']:g}th percentile (tau = {o['own_tau']:.3g}); it measures ranking only and "
        f"uses the day's own distribution, which a live system would not have in advance.", s["body"]))
    rows = [["model", "PR-AUC", "pos. rate", "ROC-AUC", "alert rate", "PR-AUC", "pos. rate", "ROC-AUC"]]
    rows.insert(0, ["", "at training tau", "", "", "", f"at the day's own {o['own_tau_percentile']:g}th pct", "", ""])
    for name, m in o["models"].items():
        a, b = m["training_tau"], m["own_tau"]
        rows.append([LABELS.get(name, name) + (" *" if name == sel else ""), f"{a['pr_auc']:.3f}", f"{a['positive_rate']:.3f}",
                     f"{a['roc_auc']:.3f}", f"{a['alert_rate']:.3f}", f"{b['pr_auc']:.3f}", f"{b['positive_rate']:.3f}",
                     f"{b['roc_auc']:.3f}"])
    t = _table(rows, [4.6, 1.6, 1.6, 1.6, 1.7, 1.6, 1.6, 1.6])
    t.setStyle(TableStyle([("SPAN", (1, 0), (4, 0)), ("SPAN", (5, 0), (7, 0)),
                           ("FONT", (0, 1), (-1, 1), "Helvetica-Bold", 7.5),
                           ("BACKGROUND", (0, 1), (-1, 1), colors.HexColor("#e8eef7")), ("ALIGN", (0, 0), (-1, 0), "CENTER")]))
    items.append(Spacer(1, 4))
    items.append(t)
    items.append(Spacer(1, 4))
    for line in other_day_verdict(o, sel):
        items.append(Paragraph(line, s["verdict"]))
    fig, ax = plt.subplots(figsize=(10, 3.4))
    plots.score_over_time(ax, o["_table"]["ts"], o["_scores"][sel], o["_labels"], ev.models[sel].threshold,
                          f"{LABELS.get(sel, sel)} on {start[:10]} (spikes at the training tau)")
    fig.tight_layout()
    items.append(Spacer(1, 6))
    items.append(_png(fig, 17.5))
    return items
