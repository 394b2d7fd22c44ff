"""Build reports/model_eval.pdf (and model_eval.json) from the last training run.

    python scripts/generate_eval_report.py [--artifacts models/artifacts]
        [--features data/processed/features.parquet] [--other-day data/processed/features_other_day.parquet]
        [--out reports/model_eval.pdf]

Loads the saved models, rescores the stored validation and test ranges, and scores one capture
from another day (reported separately). Pages: data, tau and split; the verdict against the
baselines; metrics of every model; PR and ROC curves; calibration; confusion matrices; scores
over time with the true spikes; the other day; what drives the models.
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
from models.artifacts import DEFAULT_ARTIFACTS, ModelLoadError
from models.data import TableError

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="training artifacts (default: %(default)s)")
    parser.add_argument("--features", type=Path, help="the table the models were trained on (default: the one in summary.json)")
    parser.add_argument("--other-day", type=Path, help="feature table of a capture from another day (optional)")
    parser.add_argument("--out", type=Path, help="PDF path (default: <paths.reports_dir>/model_eval.pdf)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    with working("loading matplotlib and reportlab"):
        from models.eval_report import build_pdf, evaluate_artifacts, public  # after --help: slow to import

    try:
        cfg = load_config(args.config)
        features = args.features
        if features is None:
            summary_file = args.artifacts / "summary.json"
            features = Path(json.loads(summary_file.read_text())["data"]["table"]) if summary_file.is_file() else Path(cfg.paths.features)
        with working(f"rescoring the models of {args.artifacts} on {features}"
                     + (f" and {args.other_day}" if args.other_day else "")):
            ev = evaluate_artifacts(args.artifacts, features, args.other_day)
    except (ConfigError, TableError, ModelLoadError, json.JSONDecodeError) as exc:
        print(f"generate_eval_report: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path(cfg.paths.reports_dir) / "model_eval.pdf"
    with working(f"writing {out}"):
        pages = build_pdf(ev, out)
    facts = public(ev)
    out.with_suffix(".json").write_text(json.dumps(facts, indent=2, default=str) + "\n")
    for line in facts["verdict"]:
        print(line)
    for line in facts["other_day_verdict"]:
        print(line)
    for problem in facts["mismatches"]:
        log.warning("rescoring differs from training: %s", problem)
    print(f"wrote {out} ({pages} pages) and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
