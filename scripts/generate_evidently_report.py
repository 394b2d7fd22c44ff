"""Data drift and data summary reports (Evidently, HTML and JSON) in reports/evidently/.

    python scripts/generate_evidently_report.py [--features data/processed/features.parquet]
        [--summary models/artifacts/summary.json] [--out reports/evidently]

Two comparisons: the first half of the table against the second (early vs late), and the
train part against the test part of the last training run (from its summary.json; without
one, the default 60/20/20 time split). Prints the share of drifted columns and which.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from common.config import ConfigError, load_config
from common.logs import setup_logging
from common.progress import working
from features.labels import sigma_column
from models.artifacts import DEFAULT_ARTIFACTS, SUMMARY_FILE
from models.data import TableError, labeled_rows, read_table
from models.split import parts_from_ranges, time_split

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, help="feature table (default: paths.features in config.yaml)")
    parser.add_argument("--summary", type=Path, default=DEFAULT_ARTIFACTS / SUMMARY_FILE,
                        help="training summary with the split to compare (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="output folder (default: <paths.reports_dir>/evidently)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = load_config(args.config)
        features_path = args.features or Path(cfg.paths.features)
        sigma_col = sigma_column(cfg.label.horizon_s)
        columns = [*cfg.features.model_features, sigma_col]
        table = read_table(features_path, columns)
        labeled = labeled_rows(table, sigma_col, str(features_path))
        if args.summary.is_file():
            ranges = json.loads(args.summary.read_text())["split"]
            parts = parts_from_ranges(labeled, ranges)
            if parts["train"].empty or parts["test"].empty:
                raise TableError(f"{args.summary}: its split does not match {features_path}; retrain or pass --summary")
            split_source = str(args.summary)
        else:
            parts = time_split(labeled, embargo_s=cfg.label.horizon_s).parts
            split_source = "default 60/20/20 time split (no training summary found)"
    except (ConfigError, TableError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"generate_evidently_report: {exc}", file=sys.stderr)
        return 2
    with working("loading Evidently"):
        from models.drift import drift_report, early_late, write_summary  # Evidently is slow to import

    out = args.out or Path(cfg.paths.reports_dir) / "evidently"
    early, late = early_late(table)
    results = []
    for name, reference, current in (("early_vs_late", early, late),
                                     ("train_vs_test", parts["train"], parts["test"])):
        with working(f"Evidently: {name} ({len(reference):,} vs {len(current):,} rows)"):
            results.append(drift_report(reference, current, columns, out, name))
    summary_path = write_summary(results, out)
    log.info("train vs test split from %s", split_source)
    for r in results:
        print(f"{r['name']}: {r['drifted_count']}/{r['columns']} columns drifted "
              f"(share {r['drift_share']:.2f}; {r['method']} >= {r['threshold']:g}); "
              f"KS p < 0.05 would flag {r['ks_drifted_count']}/{r['columns']}")
        print(f"  reference {r['reference']['start']} .. {r['reference']['end']} ({r['reference']['rows']:,} rows), "
              f"current {r['current']['start']} .. {r['current']['end']} ({r['current']['rows']:,} rows)")
        drifted = ", ".join(f"{c} ({r['distance'][c]:.2f})" for c in r["drifted"]) or "none"
        print(f"  drifted: {drifted}")
        print(f"  {r['html']}  {r['json']}")
    print(f"summary: {summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
