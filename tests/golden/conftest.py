"""The bundled real data and its replay, computed once per test session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from common.config import Config, load_config
from features.pipeline import Summary
from features.replay import replay

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
FLAT_DIR = SAMPLE / "btcusd-2025-12"
FRAMES_FILE = SAMPLE / "btcusd-2026-04-05-frames" / "BTC_USD.ndjson.gz"
EXCHANGE_DAY = SAMPLE / "exchange-2025-11" / "exchange_ticker_20251127.ndjson.gz"  # the smallest bundled day


@pytest.fixture(scope="session")
def cfg() -> Config:
    """The repository's config.yaml, without environment overrides."""
    return load_config(REPO / "config.yaml", environ={})


@pytest.fixture(scope="session")
def flat_files() -> list[Path]:
    files = sorted(FLAT_DIR.glob("*.ndjson.gz"))
    assert len(files) >= 2, f"the bundled sample is missing from {FLAT_DIR}"
    return files


@pytest.fixture(scope="session")
def frames_file() -> Path:
    assert FRAMES_FILE.is_file(), f"the bundled frames capture is missing: {FRAMES_FILE}"
    return FRAMES_FILE


@pytest.fixture(scope="session")
def flat_replay(cfg, flat_files) -> tuple[pd.DataFrame, Summary]:
    return replay(flat_files, cfg.features, cfg.label.horizon_s)


@pytest.fixture(scope="session")
def frames_replay(cfg, frames_file) -> tuple[pd.DataFrame, Summary]:
    return replay([frames_file], cfg.features, cfg.label.horizon_s)


@pytest.fixture(scope="session")
def exchange_file() -> Path:
    assert EXCHANGE_DAY.is_file(), f"the bundled Exchange feed day is missing: {EXCHANGE_DAY}"
    return EXCHANGE_DAY


@pytest.fixture(scope="session")
def exchange_replay(cfg, exchange_file) -> tuple[pd.DataFrame, Summary]:
    return replay([exchange_file], cfg.features, cfg.label.horizon_s)
