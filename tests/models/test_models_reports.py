"""Evidently reports, the evaluation PDF, the model card and scoping brief, and the notebook."""

from __future__ import annotations

import json

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from pypdf import PdfReader

from common.config import REPO_ROOT
from models.eda import FEATURES_ENV

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def evidently_out(trained, slice_path, tmp_path_factory, script):
    out = tmp_path_factory.mktemp("evidently")
    assert script("generate_evidently_report", ["--features", str(slice_path), "--out", str(out),
                                                    "--summary", str(trained.artifacts / "summary.json")]) == 0
    return out


@pytest.fixture(scope="module")
def eval_pdf(trained, other_day_path, tmp_path_factory, script):
    out = tmp_path_factory.mktemp("eval") / "model_eval.pdf"
    assert script("generate_eval_report", ["--artifacts", str(trained.artifacts), "--other-day",
                                               str(other_day_path), "--out", str(out)]) == 0
    return out


def test_evidently_json_holds_drift_share_for_both_comparisons(evidently_out):
    summary = json.loads((evidently_out / "summary.json").read_text())
    assert set(summary) == {"early_vs_late", "train_vs_test"}
    for name, result in summary.items():
        assert 0.0 <= result["drift_share"] <= 1.0
        assert result["drifted_count"] == len(result["drifted"])
        assert result["drift_share"] == pytest.approx(result["drifted_count"] / result["columns"])
        snapshot = json.loads((evidently_out / f"{name}.json").read_text())
        shares = [m["value"]["share"] for m in snapshot["metrics"] if m["metric_name"].startswith("DriftedColumnsCount")]
        assert shares == [pytest.approx(result["drift_share"])]
        assert (evidently_out / f"{name}.html").stat().st_size > 10_000


def test_pdf_has_its_pages_and_the_metric_values(eval_pdf, trained):
    reader = PdfReader(eval_pdf)
    assert len(reader.pages) == 6
    text = " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)
    assert f"tau = {trained.summary['tau']:.4g}" in text
    for name, model in trained.summary["models"].items():
        for part in ("validation", "test"):
            m = model["metrics"][part]
            assert f"{m['pr_auc']:.3f}" in text, (name, part)
            assert f"{m['roc_auc']:.3f}" in text, (name, part)
            assert f"{m['positive_rate']:.3f}" in text
    assert "beat" in text and "Another day" in text
    facts = json.loads(eval_pdf.with_suffix(".json").read_text())
    assert facts["mismatches"] == []
    assert facts["other_day"]["rows"] > 0


def test_docs_quote_the_run(trained, eval_pdf, evidently_out, tmp_path, script):
    assert script("generate_docs", ["--artifacts", str(trained.artifacts), "--eval", str(eval_pdf.with_suffix(".json")),
                                        "--drift", str(evidently_out / "summary.json"), "--out-dir", str(tmp_path)]) == 0
    card = (tmp_path / "model_card_v1.md").read_text()
    for heading in ("## Intended use", "## Data", "## Metrics", "## Limits", "## Ethical considerations"):
        assert heading in card
    selected = trained.summary["models"][trained.summary["selected"]]["metrics"]["test"]
    assert f"| {selected['pr_auc']:.3f} | {selected['positive_rate']:.3f} |" in card
    assert "no trading" in card.lower()
    brief = PdfReader(tmp_path / "scoping_brief.pdf")
    assert len(brief.pages) == 1
    assert f"{selected['pr_auc']:.3f}" in brief.pages[0].extract_text()


def test_notebook_runs_headless(slice_path, monkeypatch, tmp_path):
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
