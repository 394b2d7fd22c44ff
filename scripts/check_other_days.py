"""Independent check of the served model on captures of other days, from other recorders.

    python scripts/check_other_days.py [--artifacts models/artifacts] [--model models/artifacts/har]
        [--group NAME=GLOB ...] [--out reports/check_other_days.json]

By default the two bundled captures that training never sees: the flat ticker records of
2025-11-30 .. 2025-12-06 (data/sample/btcusd-2025-12/) and the Advanced Trade frames of
2026-04-05 (data/sample/btcusd-2026-04-05-frames/). Each group is replayed through the feature
module and scored by the saved model and the saved persistence baseline. Prints, per group,
PR-AUC of both beside the positive rate and the alert precision, then whether the criteria
hold: above persistence on each group, at least 1.15x on the geometric mean, alerts at least
1.5x as precise as the positive rate. Exit code 0 whether met or not (2: bad input).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from common.config import ConfigError, load_config
from common.logs import setup_logging
from features.replay import InputFileError
from models.artifacts import DEFAULT_ARTIFACTS, ModelLoadError, load_model
from models.data import TableError

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help="training artifacts: the selected model and the persistence baseline (default: %(default)s)")
    parser.add_argument("--model", type=Path, help="model folder to check (default: the selected one in --artifacts)")
    parser.add_argument("--group", action="append", default=[], metavar="NAME=GLOB",
                        help="a group of captures (repeatable; default: the two bundled other-day captures)")
    parser.add_argument("--out", type=Path, help="JSON output (default: <paths.reports_dir>/check_other_days.json)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def _groups(specs: list[str]) -> dict[str, list[str]]:
    from models.check import OTHER_DAYS

    if not specs:
        return OTHER_DAYS
    groups: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, pattern = spec.partition("=")
        if not sep or not name or not pattern:
            raise TableError(f"--group {spec!r}: write it as NAME=GLOB")
        groups.setdefault(name, []).append(pattern)
    return groups


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    from models.check import run_check  # pandas/sklearn: after --help

    try:
        cfg = load_config(args.config)
        model = load_model(args.model or args.artifacts)
        reference = load_model(args.artifacts / "persistence")
        result = run_check(_groups(args.group), model, reference, cfg)
    except (ConfigError, TableError, ModelLoadError, InputFileError) as exc:
        print(f"check_other_days: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path(cfg.paths.reports_dir) / "check_other_days.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    for line in result["sentences"]:
        print(line)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
