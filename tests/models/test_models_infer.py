"""models/infer.py: score mode output and printed figures, benchmark mode."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models import infer

pytestmark = pytest.mark.integration


def test_score_mode_writes_scores_sigmas_and_labels_at_each_product_tau(trained, tmp_path, capsys):
    out = tmp_path / "pred.parquet"
    assert infer.main(["--features", str(trained.test_out), "--model", str(trained.artifacts), "--out", str(out)]) == 0
    pred = pd.read_parquet(out)
    test = pd.read_parquet(trained.test_out)
    assert list(pred.columns) == ["product_id", "ts", "score", "sigma", "alert", "label"]
    assert len(pred) == len(test)
    tau = test["product_id"].map(trained.summary["taus"])
    assert np.array_equal(pred["label"].to_numpy(dtype=int), (test["sigma_future_60s"] >= tau).astype(int).to_numpy())
    assert (pred["sigma"] > 0).all()
    selected = trained.summary["models"][trained.summary["selected"]]["metrics"]["validation"]
    printed = capsys.readouterr().out
    assert f"PR-AUC {selected['pr_auc']:.3f} (positive rate {selected['positive_rate']:.3f})" in printed


def test_rows_without_future_volatility_get_no_label(trained, slice_path, tmp_path, capsys):
    out = tmp_path / "pred.parquet"
    assert infer.main(["--features", str(slice_path), "--out", str(out), "--model", str(trained.artifacts / "gbm")]) == 0
    pred = pd.read_parquet(out)
    table = pd.read_parquet(slice_path)
    assert pred["label"].isna().sum() == table["sigma_future_60s"].isna().sum() > 0
    assert "labeled rows" in capsys.readouterr().out


def test_benchmark_mode_prints_speed_and_real_time_ratio(trained, capsys):
    code = infer.main(["--features", str(trained.test_out), "--model", str(trained.artifacts), "--mode", "benchmark"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("batch_rows_per_s", "row_latency_ms_p50", "batch_realtime_ratio", "row_realtime_ratio"):
        assert result[key] > 0
    assert result["rows"] == len(pd.read_parquet(trained.test_out))
