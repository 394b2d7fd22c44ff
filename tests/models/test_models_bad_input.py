"""Bad input gives one clear error line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from common.config import REPO_ROOT
from models import infer, train


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_file(tmp_path, capsys):
    assert train.main(["--features", str(tmp_path / "nope.parquet"), "--no-mlflow"]) != 0
    line = one_line(capsys)
    assert "no such file" in line and "make replay" in line


def test_missing_columns(slice_path, tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    pd.read_parquet(slice_path).drop(columns=["log_rv_60s", "sigma_future_60s"]).to_parquet(bad)
    assert train.main(["--features", str(bad), "--no-mlflow", "--artifacts", str(tmp_path / "a")]) != 0
    line = one_line(capsys)
    assert "missing column(s) log_rv_60s, sigma_future_60s" in line


def test_empty_table(slice_path, tmp_path, capsys):
    empty = tmp_path / "empty.parquet"
    pd.read_parquet(slice_path).head(0).to_parquet(empty)
    assert train.main(["--features", str(empty), "--no-mlflow", "--artifacts", str(tmp_path / "a")]) != 0
    assert "has no rows" in one_line(capsys)


def test_not_parquet(tmp_path, capsys):
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    assert train.main(["--features", str(junk), "--no-mlflow"]) != 0
    assert "not a readable Parquet file" in one_line(capsys)


@pytest.mark.parametrize("argv, message", [
    (["--alert-budget", "1.5"], "--alert-budget must be between 0 and 1"),
    (["--folds", "1"], "folds must be at least 2"),
    (["--embargo-s", "10"], "must be at least the label horizon"),
])
def test_settings_that_cannot_work(slice_path, tmp_path, capsys, argv, message):
    assert train.main(["--features", str(slice_path), "--no-mlflow", "--artifacts", str(tmp_path / "a"), *argv]) != 0
    assert message in one_line(capsys)


def test_too_few_rows_for_the_folds(slice_path, tmp_path, capsys):
    few = tmp_path / "few.parquet"
    pd.read_parquet(slice_path).head(400).to_parquet(few)
    assert train.main(["--features", str(few), "--no-mlflow", "--artifacts", str(tmp_path / "a")]) != 0
    assert "too few" in one_line(capsys)


def test_window_without_data(slice_path, tmp_path, capsys):
    assert train.main(["--features", str(slice_path), "--no-mlflow", "--since", "2030-01-01"]) != 0
    assert "no row has sigma_future_60s" in one_line(capsys)


def test_infer_without_a_trained_model(slice_path, tmp_path, capsys):
    assert infer.main(["--features", str(slice_path), "--model", str(tmp_path)]) != 0
    assert "train first" in one_line(capsys)


def test_infer_table_without_model_inputs(trained, tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    pd.read_parquet(trained.test_out).drop(columns=["spread_rel_60s"]).to_parquet(bad)
    assert infer.main(["--features", str(bad), "--model", str(trained.artifacts)]) != 0
    assert "spread_rel_60s" in one_line(capsys)


def test_infer_unknown_registry_alias(trained, capsys):
    code = infer.main(["--features", str(trained.test_out), "--model", "models:/no-such-model@champion",
                       "--mlflow-uri", trained.uri])
    assert code != 0
    assert "cannot be loaded from MLflow" in one_line(capsys)


def test_check_with_a_malformed_group(trained, capsys, script):
    assert script("check_other_days", ["--artifacts", str(trained.artifacts), "--group", "no-equals-sign"]) != 0
    assert "NAME=GLOB" in one_line(capsys)


def test_eval_report_without_a_run(tmp_path, capsys, script):
    assert script("generate_eval_report", ["--artifacts", str(tmp_path), "--features", str(tmp_path / "x.parquet")]) != 0
    assert "run models/train.py first" in one_line(capsys)


def test_cli_error_is_one_line_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "models/train.py"), "--features", str(tmp_path / "nope.parquet")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"train: {tmp_path / 'nope.parquet'}: no such file; "
                                                "build it with `make replay` (scripts/replay.py)"]


@pytest.mark.parametrize("argv", [["--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 0
    assert "--mlflow-uri" in capsys.readouterr().out
