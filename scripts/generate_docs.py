"""Write the model card and the scoping brief from the last run's real figures.

    python scripts/generate_docs.py [--artifacts models/artifacts] [--check reports/check_other_days.json]
        [--drift reports/evidently/summary.json] [--out-dir reports]

They go to reports/ (model_card_v1.md, scoping_brief.pdf), beside the run's other outputs; the
committed docs/model_card_v1.md and docs/scoping_brief.pdf change only with `make handoff`.

Run it after models/train.py, scripts/check_other_days.py and scripts/generate_evidently_report.py
(make demo does); the check and drift inputs are optional and their sections are left out when
missing. Both documents open with the walk-forward verdict, then the alert rate and precision.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from common.config import ConfigError, load_config
from common.logs import setup_logging
from models.artifacts import DEFAULT_ARTIFACTS, SUMMARY_FILE

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="training artifacts (default: %(default)s)")
    parser.add_argument("--check", type=Path, default=Path("reports/check_other_days.json"),
                        help="independent check figures (default: %(default)s)")
    parser.add_argument("--drift", type=Path, default=Path("reports/evidently/summary.json"),
                        help="drift summary (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, help="where to write (default: paths.reports_dir in config.yaml)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def _read(path: Path, required: bool) -> dict | None:
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path}: not found; run models/train.py first")
        log.warning("%s not found: its section is left out", path)
        return None
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        out_dir = args.out_dir or Path(load_config(args.config).paths.reports_dir)
        summary = _read(args.artifacts / SUMMARY_FILE, required=True)
        check = _read(args.check, required=False)
        drift = _read(args.drift, required=False)
    except (ConfigError, FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"generate_docs: {exc}", file=sys.stderr)
        return 2
    from models.docs import model_card, scoping_brief  # reportlab: after --help

    out_dir.mkdir(parents=True, exist_ok=True)
    card = out_dir / "model_card_v1.md"
    card.write_text(model_card(summary, check, drift))
    brief = out_dir / "scoping_brief.pdf"
    scoping_brief(summary, check, brief)
    print(f"wrote {card} and {brief}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
