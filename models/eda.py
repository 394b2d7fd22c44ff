"""Exploratory views of the feature table, for notebooks/eda.ipynb (which only calls these).

Loads the table the replay wrote, or replays the bundled sample through the feature module
when it is missing, so the notebook runs on a fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from common.config import REPO_ROOT, Config
from features.labels import sigma_column, spike_label
from features.replay import expand_inputs, replay
from models.plots import with_gaps

SAMPLE = REPO_ROOT / "data/sample/btcusd-2025-12/*.ndjson.gz"
FEATURES_ENV = "VOLSPIKE_FEATURES"


def load_features(cfg: Config, path: str | Path | None = None) -> pd.DataFrame:
    """The feature table at ``path`` (or $VOLSPIKE_FEATURES, or paths.features); replays the sample if absent."""
    path = Path(path or os.environ.get(FEATURES_ENV) or REPO_ROOT / cfg.paths.features)
    if path.is_file():
        return pd.read_parquet(path)
    table, _ = replay(expand_inputs([str(SAMPLE)]), cfg.features, cfg.label.horizon_s)
    return table


def segments(table: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """One line per recording segment: span, ticks, median and 90th percentile of future volatility."""
    sigma = sigma_column(cfg.label.horizon_s)
    g = table.groupby("segment")
    out = pd.DataFrame({
        "start": g["ts"].min(), "end": g["ts"].max(), "ticks": g.size(),
        "minutes": (g["ts"].max() - g["ts"].min()).dt.total_seconds() / 60,
        "sigma_p50": g[sigma].median(), "sigma_p90": g[sigma].quantile(0.9),
    })
    return out.reset_index(drop=True).round({"minutes": 1})


def plot_sigma_percentiles(table: pd.DataFrame, cfg: Config, tau: float, since: pd.Timestamp) -> Figure:
    """Percentile curve of future volatility (all data and the training window) with tau marked."""
    sigma = sigma_column(cfg.label.horizon_s)
    q = np.arange(1, 100)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, part in (("all recordings", table), (f"from {since:%Y-%m-%d}", table[table["ts"] >= since])):
        ax.plot(q, np.nanpercentile(part[sigma], q), label=label)
    ax.axhline(tau, color="red", ls="--", lw=1, label=f"tau = {tau:.3g} ({cfg.label.tau_percentile:g}th pct of train)")
    for p in (80, 90, 95):
        ax.axvline(p, color="grey", lw=0.6, ls=":")
    ax.set(xlabel="percentile", ylabel=sigma, title=f"Percentiles of {sigma}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_distributions(table: pd.DataFrame, features: tuple[str, ...]) -> Figure:
    """Histogram of each model input (1st to 99th percentile, so the tails do not hide the body)."""
    cols = 4
    rows = (len(features) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(14, 2.6 * rows))
    for ax, name in zip(axes.ravel(), features):
        v = table[name].dropna()
        lo, hi = np.percentile(v, [1, 99])
        ax.hist(v.clip(lo, hi), bins=60, color="#1f77b4")
        ax.set_title(f"{name} (missing {table[name].isna().mean():.1%})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(features):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_sigma_over_time(table: pd.DataFrame, cfg: Config, tau: float) -> Figure:
    """Future volatility through the session with tau: spikes come in bursts."""
    sigma = sigma_column(cfg.label.horizon_s)
    fig, ax = plt.subplots(figsize=(14, 3.5))
    t, v = with_gaps(table["ts"], table[sigma].to_numpy())
    ax.plot(t, v, lw=0.5)
    ax.axhline(tau, color="red", ls="--", lw=1, label="tau")
    ax.set(ylabel=sigma, title=f"{sigma} over time (gaps between recordings left blank)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def spike_bursts(table: pd.DataFrame, cfg: Config, tau: float) -> pd.DataFrame:
    """Runs of consecutive spike rows within a segment: when, how long, how many ticks."""
    sigma = sigma_column(cfg.label.horizon_s)
    known = table[table[sigma].notna()]
    y = spike_label(known[sigma], tau).astype(int).to_numpy()
    seg = known["segment"].to_numpy()
    new_run = np.r_[True, (y[1:] != y[:-1]) | (seg[1:] != seg[:-1])]
    run_id = np.cumsum(new_run)
    runs = pd.DataFrame({"run": run_id, "y": y, "ts": known["ts"].to_numpy()})
    spikes = runs[runs["y"] == 1].groupby("run")["ts"].agg(["min", "max", "size"])
    spikes["seconds"] = (spikes["max"] - spikes["min"]).dt.total_seconds()
    return spikes.rename(columns={"min": "start", "max": "end", "size": "ticks"}).reset_index(drop=True)


def label_autocorrelation(table: pd.DataFrame, cfg: Config, tau: float, lags_s: tuple[int, ...]) -> pd.Series:
    """P(spike at t + lag | spike at t) per lag: how long a spike state persists."""
    sigma = sigma_column(cfg.label.horizon_s)
    known = table[table[sigma].notna()].sort_values("ts")
    y = spike_label(known[sigma], tau).astype(int).to_numpy()
    ts = known["ts"].dt.tz_convert(None).to_numpy()
    seg = known["segment"].to_numpy()
    out = {}
    for lag in lags_s:
        idx = np.searchsorted(ts, ts + np.timedelta64(lag, "s"))
        ok = idx < len(ts)
        ok[ok] = seg[idx[ok]] == seg[ok]  # the later row must be in the same recording segment
        later, now = y[idx[ok]], y[ok]
        out[f"{lag} s"] = float(later[now == 1].mean()) if (now == 1).any() else float("nan")
    return pd.Series(out, name="P(spike later | spike now)")


def plot_spike_rate_by_decile(table: pd.DataFrame, cfg: Config, features: tuple[str, ...], tau: float) -> Figure:
    """Spike rate within each decile of each input: which inputs separate spikes at all."""
    sigma = sigma_column(cfg.label.horizon_s)
    known = table[table[sigma].notna()]
    y = spike_label(known[sigma], tau).astype(float)
    cols = 4
    rows = (len(features) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(14, 2.6 * rows), sharey=True)
    for ax, name in zip(axes.ravel(), features):
        deciles = pd.qcut(known[name].rank(method="first"), 10, labels=False)
        rate = y.groupby(deciles).mean()
        ax.bar(rate.index + 1, rate.to_numpy(), color="#2ca02c")
        ax.axhline(y.mean(), color="black", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(features):]:
        ax.axis("off")
    fig.supxlabel("decile of the input (1 = lowest)")
    fig.supylabel("spike rate (dashed: overall)")
    fig.tight_layout()
    return fig
