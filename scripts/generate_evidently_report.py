"""Drift that means something: calibrate on the training rows, measure, write Evidently reports.

    python scripts/generate_evidently_report.py [--features data/processed/features.parquet]
        [--summary models/artifacts/summary.json] [--out reports/evidently]

1. Calibrates the drift decision on the train part of the last training run: each model column's
   distance (Wasserstein / reference std) between 10-minute windows and the training rows of the
   same product; a column drifts beyond the configured quantile of those distances, a window when
   enough columns do (config.yaml drift:). Label columns never take part.
2. Measures the false-alarm rate between training windows (leaving one day out) and the
   detection of real regime changes: windows of the other-period captures (December 2025,
   April 2026) against the November training rows, and April against December.
3. Writes Evidently HTML + JSON reports, each headed by what its reference and current windows
   are: train vs validation, November vs December, November vs April, December vs April; and
   summary.json with every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from common.config import ConfigError, load_config
from common.logs import setup_logging
from common.progress import working
from features.replay import InputFileError
from models.artifacts import DEFAULT_ARTIFACTS, SUMMARY_FILE
from models.data import TableError, read_table

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, help="the training table (default: the one in the summary)")
    parser.add_argument("--summary", type=Path, default=DEFAULT_ARTIFACTS / SUMMARY_FILE,
                        help="training summary with the train and validation ranges (default: %(default)s)")
    parser.add_argument("--no-other-periods", action="store_true",
                        help="skip the detection measurements on the December and April captures")
    parser.add_argument("--out", type=Path, help="output folder (default: <paths.reports_dir>/evidently)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def _part(table: pd.DataFrame, rng: dict) -> pd.DataFrame:
    return table[(table["ts"] >= pd.Timestamp(rng["start"])) & (table["ts"] <= pd.Timestamp(rng["end"]))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = load_config(args.config)
        if not args.summary.is_file():
            raise TableError(f"{args.summary}: no training summary; run models/train.py first")
        summary = json.loads(args.summary.read_text())
        features_path = args.features or Path(summary["data"]["table"])
        columns = list(cfg.features.model_features)
        table = read_table(features_path, ["product_id", *columns])
        train, validation = _part(table, summary["split"]["train"]), _part(table, summary["split"]["validation"])
        if train.empty or validation.empty:
            raise TableError(f"{args.summary}: its ranges select no rows of {features_path}; retrain or pass --summary")
    except (ConfigError, TableError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"generate_evidently_report: {exc}", file=sys.stderr)
        return 2
    from models.check import OTHER_DAYS, replay_group  # replay of the other periods
    with working("loading Evidently"):
        from models.drift import calibrate, detection, drift_report, write_summary  # Evidently is slow to import

    d = cfg.drift
    out = args.out or Path(cfg.paths.reports_dir) / "evidently"
    calibration = calibrate(train, columns, d.window_minutes, d.dataset_share, d.false_alarm_target)
    reports = [drift_report(train, validation, columns, out, "train_vs_validation", calibration,
                            "the served models' train part against the newest rows (their validation part)")]
    measured = []
    if not args.no_other_periods:
        try:
            december, april = (replay_group(patterns, cfg) for patterns in OTHER_DAYS.values())
        except (InputFileError, TableError) as exc:
            print(f"generate_evidently_report: {exc}", file=sys.stderr)
            return 2
        btc = train[train["product_id"].isin(december["product_id"].unique())]
        measured = [detection(train, december, columns, calibration, "november_to_december"),
                    detection(train, april, columns, calibration, "november_to_april")]
        dec_cal = calibrate(december, columns, d.window_minutes, d.dataset_share, d.false_alarm_target)
        measured.append(detection(december, april, columns, dec_cal, "december_to_april"))
        measured[-1]["reference_false_alarm_rate"] = dec_cal["leave_one_day_out"]["false_alarm_rate"]
        reports += [
            drift_report(btc, december, columns, out, "november_vs_december", calibration,
                         "training rows of the same product (November, Exchange feed) against the December capture"),
            drift_report(btc, april, columns, out, "november_vs_april", calibration,
                         "training rows of the same product (November, Exchange feed) against the April capture"),
            drift_report(december, april, columns, out, "december_vs_april", dec_cal,
                         "the December capture against the April capture (thresholds calibrated on December)"),
        ]
    sentences = _sentences(calibration, measured)
    path = write_summary({"calibration": calibration, "detection": measured,
                          "reports": {r["name"]: r for r in reports}, "sentences": sentences}, out)
    for line in sentences:
        print(line)
    for r in reports:
        print(f"{r['name']}: {'drift' if r['dataset_drift'] else 'no drift'} ({r['drifted_count']}/{r['columns']} "
              f"columns: {', '.join(r['drifted']) or 'none'})  {r['html']}")
    print(f"summary: {path}")
    return 0


def _sentences(calibration: dict, measured: list[dict]) -> list[str]:
    lood = calibration["leave_one_day_out"]
    lines = [f"False alarms between windows of the training rows: {lood['false_alarm_rate']:.1%} of {lood['windows']} "
             f"{calibration['window_minutes']:g}-minute windows, each {calibration['held_out_unit']} judged against the "
             f"others (target "
             f"{calibration['false_alarm_target']:.0%}, {'met' if calibration['target_met'] else 'NOT met'}; column "
             f"thresholds at the {calibration['column_quantile']:.1%} quantile of the training windows' distances; "
             f"in sample: {calibration['in_sample_false_alarm_rate']:.1%} of {calibration['training_windows']})."]
    for m in measured:
        lines.append(f"{m['name'].replace('_', ' ')}: {m['detection_rate']:.0%} of {m['windows']} windows detected as drift"
                     + (f" (false alarms within the reference period: {m['reference_false_alarm_rate']:.0%})"
                        if "reference_false_alarm_rate" in m else "") + ".")
    return lines


if __name__ == "__main__":
    sys.exit(main())
