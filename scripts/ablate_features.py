"""Which feature groups earn their place: the HAR-style forecaster's walk-forward with and without each.

    python scripts/ablate_features.py [--features data/processed/features.parquet] [--folds 6]

Runs the same walk-forward as models/train.py (folds, embargo, tau per product, budget) for the
HAR-style forecaster on nested feature sets and prints each set's geometric-mean PR-AUC ratio to
persistence, per fold and per product. It reads only the training table: this is how the model
inputs (config: features) were chosen, and how a change to them should be judged.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.config import ConfigError, load_config
from common.logs import setup_logging
from models.data import TableError, labeled_rows, read_table

log = logging.getLogger(__name__)


def feature_sets(spec) -> dict[str, tuple[str, ...]]:
    """Nested sets: the log realized volatilities, plus the EWMAs, plus the relative spreads (all inputs)."""
    log_rv = tuple(f"log_rv_{w:g}s" for w in spec.windows_s)
    ewma = tuple(f"log_ewma_rv_{h:g}s" for h in spec.ewma_halflives_s)
    return {"log rv": log_rv, "log rv + EWMA": log_rv + ewma, "all model inputs": tuple(spec.model_features)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, help="feature table (default: paths.features in config.yaml)")
    parser.add_argument("--folds", type=int, help="walk-forward folds (default: models.folds)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from features.labels import sigma_column
    from models.walkforward import walk_forward

    try:
        cfg = load_config()
        sigma = sigma_column(cfg.label.horizon_s)
        path = args.features or Path(cfg.paths.features)
        table = labeled_rows(read_table(path, ["product_id", *cfg.features.model_features, sigma]), sigma, str(path))
    except (ConfigError, TableError) as exc:
        print(f"ablate_features: {exc}", file=sys.stderr)
        return 2
    m = cfg.models
    table = table.sort_values("ts", kind="stable").reset_index(drop=True)
    for name, features in feature_sets(cfg.features).items():
        wf = walk_forward(table, ("persistence", "har"), features, f"log_rv_{cfg.label.horizon_s:g}s", sigma,
                          cfg.label.tau_percentile, m.alert_budget, args.folds or m.folds, m.initial_share,
                          m.validation_share, m.embargo_s, draws=0)
        har = wf.summary["har"]
        print(f"{name:<18} {har['gm_ratio']:.3f}x persistence; per fold "
              + " ".join(f"{r:.2f}" for r in har["fold_ratios"]) + "; per product "
              + ", ".join(f"{p} {v['gm_ratio']:.2f}x" for p, v in har["by_product"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
