"""Exploratory views of the feature table, for notebooks/eda.ipynb (which only calls these).

Loads the table the replay wrote, or replays the bundled training data through the feature
module when it is missing, so the notebook runs on a fresh clone. Spikes are judged against
each product's own tau, as in training.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from common.config import REPO_ROOT, Config
from features.labels import sigma_column
from features.replay import expand_inputs, replay
from models.plots import with_gaps
from models.walkforward import labels_for, split_history, taus_from_train

SAMPLE = REPO_ROOT / "data/sample/exchange-2025-11/*.ndjson.gz"
Taus = dict[str, float]
FEATURES_ENV = "VOLSPIKE_FEATURES"


def load_features(cfg: Config, path: str | Path | None = None) -> pd.DataFrame:
    """The feature table at ``path`` (or $VOLSPIKE_FEATURES, or paths.features); replays the sample if absent."""
    path = Path(path or os.environ.get(FEATURES_ENV) or REPO_ROOT / cfg.paths.features)
    if path.is_file():
        return pd.read_parquet(path)
    table, _ = replay(expand_inputs([str(SAMPLE)]), cfg.features, cfg.label.horizon_s)
    return table


def training_taus(labeled: pd.DataFrame, cfg: Config) -> tuple[Taus, float]:
    """tau per product as models/train.py sets it for the served models: from the train part."""
    labeled = labeled.sort_values("ts", kind="stable").reset_index(drop=True)
    embargo = np.timedelta64(int(cfg.models.embargo_s * 1e9), "ns")
    parts = split_history(labeled["ts"].to_numpy("datetime64[ns]"), len(labeled), cfg.models.validation_share, embargo)
    return taus_from_train(labeled.iloc[parts.train], sigma_column(cfg.label.horizon_s), cfg.label.tau_percentile)


def _labels(table: pd.DataFrame, cfg: Config, taus: Taus) -> tuple[pd.DataFrame, np.ndarray]:
    sigma = sigma_column(cfg.label.horizon_s)
    known = table[table[sigma].notna()]
    return known, labels_for(known, sigma, taus, float(np.median(list(taus.values()))))


def segments(table: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """One line per recording segment and product: span, ticks, median and 90th percentile of future volatility."""
    sigma = sigma_column(cfg.label.horizon_s)
    g = table.groupby(["product_id", "segment"])
    out = pd.DataFrame({
        "start": g["ts"].min(), "end": g["ts"].max(), "ticks": g.size(),
        "minutes": (g["ts"].max() - g["ts"].min()).dt.total_seconds() / 60,
        "sigma_p50": g[sigma].median(), "sigma_p90": g[sigma].quantile(0.9),
    })
    return out.reset_index(level="segment", drop=True).reset_index().round({"minutes": 1})


def plot_sigma_percentiles(table: pd.DataFrame, cfg: Config, taus: Taus) -> Figure:
    """Percentile curve of future volatility per product, with its tau marked."""
    sigma = sigma_column(cfg.label.horizon_s)
    q = np.arange(1, 100)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for product, part in table.groupby("product_id"):
        line = ax.plot(q, np.nanpercentile(part[sigma], q), label=product)[0]
        if product in taus:
            ax.axhline(taus[product], color=line.get_color(), ls="--", lw=1,
                       label=f"tau {product} = {taus[product]:.3g}")
    for p in (80, 90, 95):
        ax.axvline(p, color="grey", lw=0.6, ls=":")
    ax.set(xlabel="percentile", ylabel=sigma, title=f"Percentiles of {sigma} per product", yscale="log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_distributions(table: pd.DataFrame, features: tuple[str, ...]) -> Figure:
    """Histogram of each model input per product (1st to 99th percentile, so the tails do not hide the body)."""
    cols = 4
    rows = (len(features) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(14, 2.6 * rows))
    for ax, name in zip(axes.ravel(), features):
        lo, hi = np.nanpercentile(table[name], [1, 99])
        for product, part in table.groupby("product_id"):
            ax.hist(part[name].dropna().clip(lo, hi), bins=60, histtype="step", label=product)
        ax.set_title(f"{name} (missing {table[name].isna().mean():.1%})", fontsize=9)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=7)
    for ax in axes.ravel()[len(features):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_sigma_over_time(table: pd.DataFrame, cfg: Config, taus: Taus) -> Figure:
    """Future volatility through the recordings, one panel per product, with its tau: spikes come in bursts."""
    sigma = sigma_column(cfg.label.horizon_s)
    products = sorted(table["product_id"].unique())
    fig, axes = plt.subplots(len(products), 1, figsize=(14, 2.6 * len(products)), sharex=True, squeeze=False)
    for ax, product in zip(axes[:, 0], products):
        part = table[table["product_id"] == product]
        t, v = with_gaps(part["ts"], part[sigma].to_numpy())
        ax.plot(t, v, lw=0.5)
        if product in taus:
            ax.axhline(taus[product], color="red", ls="--", lw=1, label="tau")
        ax.set(ylabel=sigma, title=f"{product}: {sigma} over time (gaps between recordings left blank)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def spike_bursts(table: pd.DataFrame, cfg: Config, taus: Taus) -> pd.DataFrame:
    """Runs of consecutive spike rows within a product's segment: when, how long, how many ticks."""
    frames = []
    for product, part in table.groupby("product_id"):
        known, y = _labels(part, cfg, taus)
        seg = known["segment"].to_numpy()
        new_run = np.r_[True, (y[1:] != y[:-1]) | (seg[1:] != seg[:-1])]
        runs = pd.DataFrame({"run": np.cumsum(new_run), "y": y, "ts": known["ts"].to_numpy()})
        spikes = runs[runs["y"] == 1].groupby("run")["ts"].agg(["min", "max", "size"])
        spikes.insert(0, "product_id", product)
        frames.append(spikes)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["product_id", "min", "max", "size"])
    out["seconds"] = (out["max"] - out["min"]).dt.total_seconds()
    return out.rename(columns={"min": "start", "max": "end", "size": "ticks"})


def label_autocorrelation(table: pd.DataFrame, cfg: Config, taus: Taus, lags_s: tuple[int, ...]) -> pd.DataFrame:
    """P(spike at t + lag | spike at t) per lag and product: how long a spike state persists."""
    out = {}
    for product, part in table.groupby("product_id"):
        known, y = _labels(part.sort_values("ts", kind="stable"), cfg, taus)
        ts = known["ts"].dt.tz_convert(None).to_numpy()
        seg = known["segment"].to_numpy()
        column = {}
        for lag in lags_s:
            idx = np.searchsorted(ts, ts + np.timedelta64(lag, "s"))
            ok = idx < len(ts)
            ok[ok] = seg[idx[ok]] == seg[ok]  # the later row must be in the same recording segment
            later, now = y[idx[ok]], y[ok]
            column[f"{lag} s"] = float(later[now == 1].mean()) if (now == 1).any() else float("nan")
        out[product] = column
    return pd.DataFrame(out)


def plot_spike_rate_by_decile(table: pd.DataFrame, cfg: Config, features: tuple[str, ...], taus: Taus) -> Figure:
    """Spike rate within each decile of each input, per product: which inputs separate spikes at all."""
    cols = 4
    rows = (len(features) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(14, 2.6 * rows), sharey=True)
    for product, part in table.groupby("product_id"):
        known, y = _labels(part, cfg, taus)
        for ax, name in zip(axes.ravel(), features):
            deciles = pd.qcut(known[name].rank(method="first"), 10, labels=False)
            rate = pd.Series(y, index=known.index).groupby(deciles).mean()
            ax.plot(rate.index + 1, rate.to_numpy(), marker="o", ms=3, label=product)
            ax.set_title(name, fontsize=9)
            ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=7)
    for ax in axes.ravel()[len(features):]:
        ax.axis("off")
    fig.supxlabel("decile of the input (1 = lowest)")
    fig.supylabel("spike rate")
    fig.tight_layout()
    return fig
