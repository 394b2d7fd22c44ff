"""Drift calibration and reports, the independent check, the evaluation PDF, the model card, the notebook."""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient
from pypdf import PdfReader

from common.config import REPO_ROOT
from models.drift import calibrate, detection
from models.eda import FEATURES_ENV

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def evidently_out(trained, slice_path, tmp_path_factory, script):
    out = tmp_path_factory.mktemp("evidently")
    assert script("generate_evidently_report", ["--features", str(slice_path), "--out", str(out), "--no-other-periods",
                                                    "--summary", str(trained.artifacts / "summary.json")]) == 0
    return out


@pytest.fixture(scope="module")
def check_json(trained, other_groups, tmp_path_factory, script):
    out = tmp_path_factory.mktemp("check") / "check.json"
    argv = ["--artifacts", str(trained.artifacts), "--out", str(out)]
    for group in other_groups:
        argv += ["--group", group]
    assert script("check_other_days", argv) == 0
    return out


@pytest.fixture(scope="module")
def eval_pdf(trained, check_json, evidently_out, tmp_path_factory, script):
    out = tmp_path_factory.mktemp("eval") / "model_eval.pdf"
    assert script("generate_eval_report", ["--artifacts", str(trained.artifacts), "--check", str(check_json),
                                               "--drift", str(evidently_out / "summary.json"), "--out", str(out)]) == 0
    return out


def test_drift_is_calibrated_on_training_windows_without_label_columns(evidently_out, cfg):
    summary = json.loads((evidently_out / "summary.json").read_text())
    cal = summary["calibration"]
    assert set(cal["thresholds"]) == set(cfg.features.model_features)  # no label column among them
    assert not any("sigma_future" in c for c in cal["thresholds"])
    lood = cal["leave_one_day_out"]
    assert lood["windows"] > 0 and set(lood["by_day"]) == set(cal["held_out"])
    assert cal["target_met"] == (lood["false_alarm_rate"] <= cfg.drift.false_alarm_target)
    report = summary["reports"]["train_vs_validation"]
    assert report["drifted_count"] == len(report["drifted"])
    html = (evidently_out / "train_vs_validation.html").read_text()
    assert "Reference: " in html and "Current: " in html and report["reference"]["start"] in html
    snapshot = json.loads((evidently_out / "train_vs_validation.json").read_text())
    share = [m["value"]["share"] for m in snapshot["metrics"] if m["metric_name"].startswith("DriftedColumnsCount")]
    assert share == [pytest.approx(report["drift_share"])]


def test_false_alarms_are_rare_between_windows_of_one_market_and_shifts_are_detected(slice_table, cfg):
    """The same rows judged against themselves raise few alarms; the same rows with volatility five times higher
    and spreads far from their means are caught."""
    columns = list(cfg.features.model_features)
    table = slice_table.dropna(subset=columns)
    cal = calibrate(table, columns, cfg.drift.window_minutes, cfg.drift.dataset_share, 0.1)
    assert cal["in_sample_false_alarm_rate"] <= 0.1
    shifted = table.copy()
    for c in columns:
        shifted[c] += np.log(5.0) if c.startswith(("log_rv", "log_ewma")) else 1.0
    found = detection(table, shifted, columns, cal, "shifted")
    assert found["windows"] > 0 and found["detection_rate"] >= 0.9


def test_check_reports_both_models_beside_the_positive_rate_and_the_criteria(check_json, trained):
    result = json.loads(check_json.read_text())
    assert result["model"] == trained.summary["selected"] and result["reference"] == "persistence"
    assert [g["name"] for g in result["groups"]] == ["frames", "flat"]
    for g in result["groups"]:
        for key in ("served_tau", "own_tau"):
            x = g[key]
            assert x["ratio"] == pytest.approx(x["model"]["pr_auc"] / x["reference"]["pr_auc"])
            assert 0 <= x["model"]["positive_rate"] <= 1
    v = result["verdict"]["served_tau"]
    assert v["gm_at_least"] == 1.15 and v["lift_at_least"] == 1.5
    assert v["met"] == (v["above_reference_on_each_group"] and v["gm_met"] and v["lift_met"])
    assert result["sentences"][0].startswith("Independent check at the served tau")


def test_pdf_opens_with_the_walk_forward_verdict_then_the_alerts(eval_pdf, trained):
    reader = PdfReader(eval_pdf)
    assert len(reader.pages) == 6  # verdict, folds, calibration, check, drift, served models
    first = " ".join((reader.pages[0].extract_text() or "").split())
    sel = trained.summary["walk_forward"]["summary"][trained.summary["selected"]]
    lo, hi = sel["gm_ratio_ci90"]
    assert first.index("Walk-forward across 2 days") < first.index("Alerts at the budget")
    assert f"{sel['gm_ratio']:.2f}x" in first and f"interval {lo:.2f} to {hi:.2f}" in first
    assert f"precision {sel['precision']:.3f}" in first
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in reader.pages)
    assert "Independent check" in text and "Probabilities and ranking" in text and "False alarms" in text
    facts = json.loads(eval_pdf.with_suffix(".json").read_text())
    assert facts["mismatches"] == []


def test_docs_open_with_the_verdict_and_quote_the_run(trained, check_json, evidently_out, tmp_path, script):
    assert script("generate_docs", ["--artifacts", str(trained.artifacts), "--check", str(check_json),
                                        "--drift", str(evidently_out / "summary.json"), "--out-dir", str(tmp_path)]) == 0
    card = (tmp_path / "model_card_v1.md").read_text()
    lines = card.splitlines()
    assert lines[2].startswith("**Walk-forward across") and lines[4].startswith("Alerts at the budget")
    for heading in ("## What to expect from the alerts", "## Intended use", "## Data", "## Walk-forward across days",
                    "## Independent check", "## Drift", "## Limits", "## Ethical considerations"):
        assert heading in card
    expected = trained.summary["models"][trained.summary["selected"]]["expected_alerts"]
    assert f"precision **{expected['precision']:.3f}**" in card
    assert "no trading" in card.lower()
    brief = PdfReader(tmp_path / "scoping_brief.pdf")
    assert len(brief.pages) == 1
    assert "Walk-forward across" in brief.pages[0].extract_text()


def test_notebook_runs_headless(slice_path, monkeypatch):
    monkeypatch.setenv(FEATURES_ENV, str(slice_path))
    nb = nbformat.read(REPO_ROOT / "notebooks/eda.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4
    assert f"{len(pd.read_parquet(slice_path)):,} rows" in outputs[0]["text"]
