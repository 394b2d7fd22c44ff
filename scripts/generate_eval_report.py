"""Build reports/model_eval.pdf (and model_eval.json) from the last training run.

    python scripts/generate_eval_report.py [--artifacts models/artifacts]
        [--features data/processed/features.parquet] [--check reports/check_other_days.json]
        [--drift reports/evidently/summary.json] [--out reports/model_eval.pdf]

Page 1 opens with the verdict of the walk-forward across days (the geometric-mean PR-AUC ratio
to persistence with its day-bootstrap interval), then the alert rate and precision at the alert
budget. Then: every fold beside its positive rate, each product, reliability curves and Brier
scores, the independent check on other days (scripts/check_other_days.py) and the drift
measurements (scripts/generate_evidently_report.py) when their JSON files exist, and the
served models. The saved models rescore the validation part, so the PDF shows what the files do.
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
from models.artifacts import DEFAULT_ARTIFACTS, SUMMARY_FILE, ModelLoadError
from models.data import TableError

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="training artifacts (default: %(default)s)")
    parser.add_argument("--features", type=Path, help="the table the models were trained on (default: the one in summary.json)")
    parser.add_argument("--check", type=Path, help="independent check JSON (default: <reports_dir>/check_other_days.json if present)")
    parser.add_argument("--drift", type=Path, help="drift summary JSON (default: <reports_dir>/evidently/summary.json if present)")
    parser.add_argument("--out", type=Path, help="PDF path (default: <paths.reports_dir>/model_eval.pdf)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def _default(path: Path | None, fallback: Path) -> Path | None:
    """The given path, else the fallback when it exists (its page is optional)."""
    if path is not None:
        return path
    return fallback if fallback.is_file() else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    with working("loading matplotlib and reportlab"):
        from models.eval_report import build_pdf, evaluate_artifacts, public  # after --help: slow to import

    try:
        cfg = load_config(args.config)
        reports = Path(cfg.paths.reports_dir)
        features = args.features
        if features is None:
            summary_file = args.artifacts / SUMMARY_FILE
            features = (Path(json.loads(summary_file.read_text())["data"]["table"]) if summary_file.is_file()
                        else Path(cfg.paths.features))
        with working(f"rescoring the models of {args.artifacts} on {features}"):
            ev = evaluate_artifacts(args.artifacts, features, _default(args.check, reports / "check_other_days.json"),
                                    _default(args.drift, reports / "evidently" / "summary.json"))
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
    for problem in facts["mismatches"]:
        log.warning("rescoring differs from training: %s", problem)
    print(f"wrote {out} ({pages} pages) and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
