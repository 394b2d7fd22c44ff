"""Shared fixtures for the model tests: two real days of the bundled Exchange feed (three products),
replayed once, and one end-to-end training run into a throwaway SQLite MLflow store (a real store)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pandas as pd
import pytest

from common.config import REPO_ROOT, load_config
from features.replay import expand_inputs, replay, write_parquet
from models import train

# 2025-11-26 and 27: about 91,000 real ticks of BTC-USD, ETH-USD and SOL-USD, two UTC days.
SLICE = str(REPO_ROOT / "data/sample/exchange-2025-11/exchange_ticker_2025112[67].ndjson.gz")
# Small captures of another recorder, for the check's plumbing (not for any figure).
OTHER_FRAMES = str(REPO_ROOT / "data/sample/btcusd-2026-04-05-frames/BTC_USD.ndjson.gz")
OTHER_FLAT = str(REPO_ROOT / "data/sample/btcusd-2025-12/ticks_BTCUSD_20251206_071146.ndjson.gz")
MODEL_NAME = "spike-test"
DRAWS = "200"  # day-bootstrap draws: enough for the plumbing, fast


def run_script(name: str, argv: list[str]) -> int:
    """Call scripts/<name>.py's main(argv) in this process (the scripts folder is not a package)."""
    namespace = runpy.run_path(str(REPO_ROOT / "scripts" / f"{name}.py"), run_name=f"script_{name}")
    return namespace["main"](argv)


@pytest.fixture(scope="session")
def script() -> Callable[[str, list[str]], int]:
    return run_script


@pytest.fixture(scope="session")
def cfg():
    return load_config(environ={})


def replay_to(pattern: str, path: Path, cfg) -> Path:
    table, _ = replay(expand_inputs([pattern]), cfg.features, cfg.label.horizon_s)
    write_parquet(table, path)
    return path


@pytest.fixture(scope="session")
def slice_path(tmp_path_factory, cfg) -> Path:
    return replay_to(SLICE, tmp_path_factory.mktemp("data") / "features.parquet", cfg)


@pytest.fixture(scope="session")
def slice_table(slice_path) -> pd.DataFrame:
    return pd.read_parquet(slice_path)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, slice_path) -> SimpleNamespace:
    """models/train.py run once, end to end, into a temporary MLflow store."""
    root = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    artifacts = root / "artifacts"
    test_out = root / "features_test.parquet"
    code = train.main([
        "--features", str(slice_path), "--mlflow-uri", uri, "--experiment", "spike-test-exp", "--draws", DRAWS,
        "--model-name", MODEL_NAME, "--artifacts", str(artifacts), "--test-out", str(test_out),
    ])
    assert code == 0
    summary = json.loads((artifacts / "summary.json").read_text())
    return SimpleNamespace(root=root, uri=uri, artifacts=artifacts, test_out=test_out, summary=summary,
                           experiment="spike-test-exp", model_name=MODEL_NAME)


@pytest.fixture(scope="session")
def other_groups() -> list[str]:
    """--group arguments of the check: two small captures of another recorder."""
    return [f"frames={OTHER_FRAMES}", f"flat={OTHER_FLAT}"]
