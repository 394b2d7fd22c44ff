"""Build the team handoff folder from the current run, or check that it is complete and current.

    python scripts/build_handoff.py [--raw FILES] [--out handoff]     (make handoff)
    python scripts/build_handoff.py --check

Building needs the outputs of a run (make demo): models/artifacts/, reports/model_eval.json and
.pdf, reports/evidently/. It rewrites handoff/ (copies of those, a 10-minute raw slice with its
features and predictions, links to the compose file, Dockerfile.ingestor, .env.example,
requirements.txt, the feature spec and the model card, a manifest and the note), and
docs/model_card_v1.md and docs/scoping_brief.pdf. The raw slice comes from --raw, else from the
live capture in data/raw/ when it holds 10 minutes, else from the bundled 2026-04-05 recording.

--check exits 1 and lists what is missing or stale; it changes nothing.
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from pathlib import Path

from common.config import REPO_ROOT, ConfigError, load_config
from common.logs import setup_logging
from common.progress import working

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the handoff; exit 1 when incomplete or stale")
    parser.add_argument("--raw", nargs="+", metavar="FILE", help="raw NDJSON files to take the 10-minute slice from")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "handoff", help="handoff folder (default: handoff/)")
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs",
                        help="where the model card and scoping brief go (default: docs/)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    with working("loading the models and report code"):
        from models.handoff import HandoffError, Outputs, build, check, latest_run_differs

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"build_handoff: {exc}", file=sys.stderr)
        return 2
    outputs = Outputs.default(cfg, tuple(args.raw) if args.raw else None)
    if args.check:
        with working(f"checking {args.out}"):
            problems = check(args.out, cfg)
        for problem in problems:
            print(f"handoff: {problem}")
        reminder = latest_run_differs(args.out, outputs)
        if reminder:
            print(f"note: {reminder}")
        print("handoff: complete and current" if not problems else f"handoff: {len(problems)} problem(s)")
        return 1 if problems else 0
    try:
        with working(f"building {args.out} from the current run"):
            manifest = build(args.out, cfg, outputs)
    except HandoffError as exc:
        print(f"build_handoff: {exc}", file=sys.stderr)
        return 2
    # The model card and the brief, as scripts/generate_docs.py writes them, from the same run.
    generate_docs = runpy.run_path(str(REPO_ROOT / "scripts" / "generate_docs.py"), run_name="generate_docs")["main"]
    if generate_docs(["--artifacts", str(outputs.artifacts), "--out-dir", str(args.docs)]) != 0:
        print("build_handoff: the model card could not be written (see above)", file=sys.stderr)
        return 2
    facts = manifest["facts"]
    print(f"{facts['kind']}: {facts['label']} from the run of {facts['trained_at']}; "
          f"raw slice from {', '.join(facts['slice']['sources'])}")
    print(f"wrote {args.out}/ ({len(manifest['files'])} files, {len(manifest['links'])} links), "
          f"{args.docs / 'model_card_v1.md'} and {args.docs / 'scoping_brief.pdf'}: review and commit them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
