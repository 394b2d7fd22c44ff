"""The team handoff: one folder holding what a teammate needs to run, check and serve the model.

``build`` fills ``handoff/`` from the current outputs of a run (``make demo``): copies of the
models, the evaluation PDF and one Evidently report; a 10-minute slice of raw records, the
features the feature module makes of it and the predictions the handed-off model makes of
those; links to the project files it ships with (compose, the ingestor's Dockerfile,
``.env.example``, requirements, feature spec, model card); ``manifest.json`` with a checksum
per file and the facts the note quotes; and ``README.md``, the note, written from those facts.

``check`` says what is missing or stale: an item not there, a copy changed since the build, a
link that does not lead to its file, features that the feature module would compute
differently today, predictions the model would not make, a model that does not take the
features the config names, or a note that does not match the figures of its run.

Kinds: **Selected-base** when the handed-off prediction is one selected model, served as it is;
**Composite** when the selected model's metadata lists ``components`` (several models combined).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from common.config import REPO_ROOT, Config
from features.labels import sigma_column
from features.replay import InputFileError, expand_inputs, read_lines, replay, write_parquet
from features.ticks import parse_line
from models.artifacts import DEFAULT_ARTIFACTS, META_FILE, PREDICTIONS_FILE, SUMMARY_FILE, load_model
from models.inference import label_metrics, predictions

SLICE_S = 600
BUNDLED_RAW = "data/sample/btcusd-2026-04-05-frames/BTC_USD.ndjson.gz"
LIVE_RAW = "data/raw/*.ndjson*"
# name in handoff/ -> the project file it links to
LINKS = {
    "compose.yaml": "docker/compose.yaml",
    "Dockerfile.ingestor": "docker/Dockerfile.ingestor",
    ".env.example": ".env.example",
    "requirements.txt": "requirements.txt",
    "feature_spec.md": "docs/feature_spec.md",
    "model_card_v1.md": "docs/model_card_v1.md",
}
RAW, FEATURES, PREDICTIONS = "data/raw_10min.ndjson.gz", "data/features_10min.parquet", "predictions_10min.parquet"
ARTIFACTS = "models/artifacts"
EVAL_PDF, EVAL_JSON = "model_eval.pdf", "model_eval.json"
DRIFT_JSON = "evidently/summary.json"
DRIFT_PREFERRED = "train_vs_validation.html"  # the served models' train part against the newest rows
HEADLINE = {"pr_auc": "PR-AUC", "positive_rate": "positive rate", "alert_rate": "alert rate",
            "precision": "precision", "recall": "recall"}
BASELINES = ("persistence", "zscore")
MANIFEST, NOTE = "manifest.json", "README.md"
WHAT = {
    RAW: "10 minutes of raw records, as recorded",
    FEATURES: "their features (with the label where the next 60 s are known)",
    PREDICTIONS: "the handed-off model's predictions on those features",
    EVAL_PDF: "evaluation report", EVAL_JSON: "its figures",
    "drift_html": "Evidently report (data drift and summary)", DRIFT_JSON: "drift figures of the run's comparisons",
    ARTIFACTS: "every model of the run (model.skops, model.json) and summary.json",
}


class HandoffError(ValueError):
    """The outputs cannot make a handoff as they are; the message says what to run."""


@dataclass(frozen=True)
class Outputs:
    """Where a run left what the handoff is made from."""

    artifacts: Path
    eval_json: Path
    drift_dir: Path
    raw: tuple[str, ...] | None = None  # None: the live capture if it holds 10 minutes, else the bundled one

    @classmethod
    def default(cls, cfg: Config, raw: tuple[str, ...] | None = None) -> "Outputs":
        reports = Path(cfg.paths.reports_dir)
        return cls(DEFAULT_ARTIFACTS, reports / EVAL_JSON, reports / "evidently", raw)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path, what_to_run: str) -> dict[str, Any]:
    if not path.is_file():
        raise HandoffError(f"{path} not found: {what_to_run}")
    return json.loads(path.read_text())


# ---- the raw slice ---------------------------------------------------------------------------

def raw_slice(lines: Iterable[bytes], seconds: float = SLICE_S) -> tuple[list[bytes], dict[str, Any]]:
    """The records of the first ``seconds`` from the first timed record on (exchange time, else
    receive time), as the lines they are. Untimed lines (heartbeat-less frames, bad lines) ride along."""
    kept: list[bytes] = []
    start = last = None
    for line in lines:
        record = parse_line(line)
        t = record.ticks[0].ts_ns if record.ticks else record.received_ns
        if t is not None:
            start = t if start is None else start
            if t - start >= seconds * 1e9:
                return kept, {"complete": True, "start_ns": start, "end_ns": last, "lines": len(kept)}
            last = t if last is None else max(last, t)
        kept.append(line if line.endswith(b"\n") else line + b"\n")
    return kept, {"complete": False, "start_ns": start, "end_ns": last, "lines": len(kept)}


def _pick_raw(patterns: tuple[str, ...] | None) -> tuple[list[bytes], list[str]]:
    """The first 10 minutes of the given files, or of the live capture, or of the bundled recording."""
    candidates = [patterns] if patterns else [(str(REPO_ROOT / LIVE_RAW),), (str(REPO_ROOT / BUNDLED_RAW),)]
    short = []
    for group in candidates:
        try:
            paths = expand_inputs(group)
            lines, info = raw_slice(line for path in paths for line in read_lines(path))
        except InputFileError as exc:  # no live capture here, say so and try the next source
            short.append(str(exc))
            continue
        if info["complete"]:
            return lines, [_relative(p) for p in paths]
        short.append(f"{', '.join(group)}: shorter")
    raise HandoffError(f"no source holds {SLICE_S // 60} minutes of raw records ({'; '.join(short) or 'none found'}): "
                       "record longer with make ingest, or pass --raw FILES")


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


def _write_gzip(lines: list[bytes], out: Path) -> None:
    """Same lines, same bytes: no time stamp or name in the gzip header."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as f:
        f.writelines(lines)


# ---- facts and the note ------------------------------------------------------------------------

def slice_outputs(handoff: Path, cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of the handoff's raw slice and the handed-off model's predictions, computed now."""
    table, _ = replay([handoff / RAW], cfg.features, cfg.label.horizon_s)
    model = load_model(handoff / ARTIFACTS)
    return table, predictions(model, table, sigma_column(model.meta.get("horizon_s", cfg.label.horizon_s)))


def _headline(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(values[k]) for k in HEADLINE if isinstance(values.get(k), (int, float))}


def facts(handoff: Path, built_at: str, raw_sources: list[str], drift_report: str) -> dict[str, Any]:
    """Everything the note says, read from the handoff's own files."""
    summary = json.loads((handoff / ARTIFACTS / SUMMARY_FILE).read_text())
    evaluation = json.loads((handoff / EVAL_JSON).read_text())
    drift = json.loads((handoff / DRIFT_JSON).read_text())
    selected = summary["selected"]
    meta = json.loads((handoff / ARTIFACTS / selected / META_FILE).read_text())
    components = meta.get("components") or []
    pred = pd.read_parquet(handoff / PREDICTIONS)
    feats = pd.read_parquet(handoff / FEATURES, columns=["ts"])
    on_slice = label_metrics(pred, meta["threshold"])
    parts = {part: _headline(values) for part, values in summary["models"][selected].get("metrics", {}).items()
             if isinstance(values, dict)}
    last = next(reversed(parts), None)
    return {
        "kind": "Composite" if len(components) > 1 else "Selected-base",
        "built_at": built_at,
        "trained_at": summary["trained_at"],
        "selected": selected,
        "label": meta.get("label", selected),
        "components": components,
        "registry": (summary.get("mlflow") or {}).get("registry"),
        "tracking_uri": (summary.get("mlflow") or {}).get("tracking_uri"),
        "data": {k: summary["data"].get(k) for k in ("table", "since", "until", "labeled_rows")},
        "split": {part: r for part, r in (summary.get("split") or {}).items()
                  if isinstance(r, dict) and {"start", "end", "rows"} <= set(r)},
        "tau": summary.get("tau"), "tau_percentile": summary.get("tau_percentile"), "sigma_column": summary.get("sigma_column"),
        "threshold": meta["threshold"], "threshold_rule": meta.get("threshold_rule"),
        "features": len(meta["features"]),
        "metrics": parts,
        "baselines": {"part": last, "pr_auc": {name: _headline(m.get("metrics", {}).get(last, {})).get("pr_auc")
                                                for name, m in summary["models"].items() if name in BASELINES}},
        "drift_report": drift_report,
        "verdict": evaluation.get("verdict", []),
        "other_day_verdict": evaluation.get("other_day_verdict", []),
        "drift": {name: {"drifted": r["drifted_count"], "columns": r["columns"]}
                  for name, r in drift.get("reports", drift).items()
                  if isinstance(r, dict) and {"drifted_count", "columns"} <= set(r)},
        "selection": "by the walk-forward across days" if "walk_forward" in summary else "on validation PR-AUC",
        "slice": {
            "sources": raw_sources, "start": str(feats["ts"].min()), "end": str(feats["ts"].max()),
            "rows": int(len(pred)), "alerts": int(pred["alert"].sum()),
            "labeled": int(pred["label"].notna().sum()),
            "pr_auc": None if on_slice is None else on_slice["pr_auc"],
            "positive_rate": None if on_slice is None else on_slice["positive_rate"],
            "precision": None if on_slice is None else on_slice["precision"],
        },
    }


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _t(stamp: str) -> str:
    """'2025-12-06T01:12:47.761914+00:00' or '2025-12-06 01:12:47+00:00' -> '2025-12-06 01:12:47'."""
    return stamp.replace("T", " ")[:19]


def render_note(f: dict[str, Any]) -> str:
    """handoff/README.md, from the facts alone."""
    reg = f["registry"]
    registered = (f"registered as `{reg['model_name']}` version {reg['version']}, `@{reg['alias']}`, in "
                  f"`{f['tracking_uri']}`" if reg else "not registered in MLflow (trained with --no-mlflow)")
    kind_line = (f"**{f['kind']}**: one model, {f['label']} (`{f['selected']}`), selected {f['selection']} and "
                 "served as it is; the z-score rule is the rollback." if f["kind"] == "Selected-base" else
                 f"**{f['kind']}**: {f['label']} (`{f['selected']}`) combines "
                 + ", ".join(f"`{c}`" for c in f["components"]) + ".")
    d, s = f["data"], f["slice"]
    window = "".join(filter(None, [f" from {_t(d['since'])}" if d["since"] else "", f" until {_t(d['until'])}" if d["until"] else ""]))
    spans = list(f["split"].values())
    inside = bool(spans) and min(r["start"] for r in spans) <= s["start"].replace(" ", "T") <= max(r["end"] for r in spans)
    since = f" --since {d['since'][:10]}" if d["since"] else ""
    until = f" --until {d['until']}" if d["until"] else ""
    lines = [
        "# Handoff: volatility-spike detector",
        "",
        kind_line,
        "",
        f"Built by `make handoff` at {f['built_at']} from the training run of {f['trained_at']}; {registered}. "
        "Every figure below is read from the files in this folder (`manifest.json` holds them with a checksum "
        "per file); `make handoff` rewrites the folder from the current run.",
        "",
        "## The run",
        "",
        "| | |",
        "|---|---|",
        f"| training table | `{d['table']}`{window}, {d['labeled_rows'] or 0:,} labeled rows |",
        *[f"| {part} | {_t(r['start'])} to {_t(r['end'])} UTC, {r['rows']:,} rows |" for part, r in f["split"].items()],
        *([f"| label | `{f['sigma_column']}` >= tau = {f['tau']:.4g} ({f['tau_percentile']:g}th percentile on train) |"]
          if f["tau"] is not None else []),
        f"| model | {f['label']} on {f['features']} features; alert when score >= {f['threshold']:.4f}: "
        f"{f['threshold_rule']} |",
        *[f"| {part} | " + ", ".join(f"{HEADLINE[k]} {_f(v)}" for k, v in values.items()) + " |"
          for part, values in f["metrics"].items()],
        *([f"| baselines, {f['baselines']['part']} PR-AUC | "
           + ", ".join(f"{n} {_f(p)}" for n, p in f["baselines"]["pr_auc"].items()) + " |"] if f["baselines"]["pr_auc"] else []),
        "| drift (Evidently) | " + "; ".join(f"{n.replace('_', ' ')}: {r['drifted']}/{r['columns']} columns"
                                              for n, r in f["drift"].items()) + " |",
        f"| the 10-minute slice | {_t(s['start'])} to {_t(s['end'])} UTC "
        f"({'inside' if inside else 'outside'} the training table's span), {s['rows']:,} rows, {s['alerts']:,} alerts; "
        f"{s['labeled']:,} labeled: PR-AUC {_f(s['pr_auc'])}, positive rate {_f(s['positive_rate'])}, "
        f"precision at the threshold {_f(s['precision'])} |",
        "",
        *[f"- {line}" for line in f["verdict"] + f["other_day_verdict"]],
        "",
        "## Exact steps",
        "",
        "From a fresh clone, with Python 3.11 and `make` (macOS: `brew install libomp` first, for xgboost):",
        "",
        "```bash",
        "make setup      # .venv with the pinned requirements (binary wheels only)",
        "make demo       # replay the bundled data, train, register, score, reports (MLflow in mlruns.db)",
        f"                # its training step: .venv/bin/python models/train.py --features {d['table']}{since}{until}",
        "make handoff    # rebuild this folder from that run",
        ".venv/bin/python scripts/build_handoff.py --check   # every item here, and current",
        "```",
        "",
        "Serve the handed-off model without retraining: `mkdir -p models && cp -r handoff/models/artifacts models/`, "
        "then `make kafka` and `make serve` (the API falls back to `models/artifacts/` when the registry has no "
        "champion), or `docker compose -f docker/compose.yaml up -d --build` from the repository root. Live data: "
        "`make ingest` and `make featurize`. Then `curl -s http://127.0.0.1:8000/health`.",
        "",
        f"Replay the slice: `.venv/bin/python scripts/replay.py --raw handoff/{RAW} --out data/processed/slice.parquet`; "
        f"score it: `.venv/bin/python models/infer.py --features data/processed/slice.parquet --model handoff/{ARTIFACTS}`.",
        "",
        "## What is here",
        "",
        "| item | file | from |",
        "|---|---|---|",
        *[f"| {what} | [`{name}`]({name}) | `{src}` |" for name, what, src in _listing(f)],
        "",
        "The links point into the repository (with `core.symlinks` off, git writes each as a small file "
        "holding its target). `docs/model_card_v1.md` and `docs/scoping_brief.pdf` are written by `make handoff` "
        "from the same run.",
        "",
    ]
    return "\n".join(lines)


def _listing(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    link_what = {"compose.yaml": "Docker Compose: Kafka (KRaft), MLflow, ingestor, featurizer, API, monitoring",
                 "Dockerfile.ingestor": "image of the ingestor and featurizer",
                 ".env.example": "environment variables", "requirements.txt": "pinned requirements",
                 "feature_spec.md": "feature specification", "model_card_v1.md": "model card"}
    rows = [(name, link_what[name], target) for name, target in LINKS.items()]
    rows += [(f"{ARTIFACTS}/", WHAT[ARTIFACTS], "models/artifacts/"), (EVAL_PDF, WHAT[EVAL_PDF], "reports/"),
             (EVAL_JSON, WHAT[EVAL_JSON], "reports/"), (f["drift_report"], WHAT["drift_html"], "reports/evidently/"),
             (DRIFT_JSON, WHAT[DRIFT_JSON], "reports/evidently/"),
             (RAW, WHAT[RAW], ", ".join(f["slice"]["sources"])), (FEATURES, WHAT[FEATURES], "scripts/replay.py"),
             (PREDICTIONS, WHAT[PREDICTIONS], "models/infer.py")]
    return rows


# ---- build and check ---------------------------------------------------------------------------

def _consistent(summary: dict, evaluation: dict, drift: dict, outputs: Outputs) -> None:
    """Refuse reports made from another run than the models: the note would mix two runs."""
    mirrored = {"tau": summary.get("tau"), "taus": summary.get("taus"), "split": summary.get("split"),
                "selected": summary.get("selected"), "registry": (summary.get("mlflow") or {}).get("registry")}
    differ = sorted(k for k, v in mirrored.items() if k in evaluation and evaluation[k] != v)
    if differ:
        raise HandoffError(f"{outputs.eval_json} was made from another training run than {outputs.artifacts} "
                           f"({', '.join(differ)} differ): rerun scripts/generate_eval_report.py (make demo does)")
    pair, split = drift.get("train_vs_test"), summary.get("split") or {}
    if pair is not None and {"train", "test"} <= set(split) and (pair["reference"], pair["current"]) != (
            {k: split["train"][k] for k in ("start", "end", "rows")}, {k: split["test"][k] for k in ("start", "end", "rows")}):
        raise HandoffError(f"{outputs.drift_dir / 'summary.json'} does not compare this run's train and test parts: "
                           "rerun scripts/generate_evidently_report.py (make demo does)")
    alias = ((summary.get("mlflow") or {}).get("registry") or {}).get("alias")
    if alias not in (None, "champion"):
        raise HandoffError(f"{outputs.artifacts} holds a @{alias}, not the @champion the API serves: "
                           "hand off the champion's run (retrain into models/artifacts)")


def _drift_html(drift_dir: Path) -> Path:
    """The run's train-vs-test report when there is one, else its first HTML report."""
    reports = sorted(drift_dir.glob("*.html"), key=lambda p: (p.name != DRIFT_PREFERRED, p.name))
    if not reports:
        raise HandoffError(f"no Evidently HTML report in {drift_dir}: run scripts/generate_evidently_report.py")
    return reports[0]


def build(handoff: Path, cfg: Config, outputs: Outputs) -> dict[str, Any]:
    """Rewrite ``handoff`` from the run's outputs (scripts/build_handoff.py then writes the docs)."""
    summary = _read_json(outputs.artifacts / SUMMARY_FILE, "train first (make demo)")
    evaluation = _read_json(outputs.eval_json, "run scripts/generate_eval_report.py (make demo does)")
    drift = _read_json(outputs.drift_dir / "summary.json", "run scripts/generate_evidently_report.py (make demo does)")
    _consistent(summary, evaluation, drift, outputs)
    if tuple(summary["features"]) != tuple(cfg.features.model_features):
        raise HandoffError(f"{outputs.artifacts} was trained on other features than config.yaml names: retrain (make demo)")
    lines, sources = _pick_raw(outputs.raw)
    html = _drift_html(outputs.drift_dir)
    drift_report = f"evidently/{html.name}"

    if handoff.exists():
        shutil.rmtree(handoff)
    handoff.mkdir(parents=True)
    for name, target in LINKS.items():
        try:
            (handoff / name).symlink_to(Path("..") / target)
        except OSError:  # Windows without symlink rights: the form git writes with core.symlinks off
            (handoff / name).write_text(f"../{target}")
    shutil.copytree(outputs.artifacts, handoff / ARTIFACTS,  # the walk-forward's scores of every row stay behind (MBs)
                    ignore=shutil.ignore_patterns("*.tmp", ".*", PREDICTIONS_FILE))
    shutil.copy2(outputs.eval_json.with_suffix(".pdf"), handoff / EVAL_PDF)
    shutil.copy2(outputs.eval_json, handoff / EVAL_JSON)
    (handoff / "evidently").mkdir()
    shutil.copy2(html, handoff / drift_report)
    shutil.copy2(outputs.drift_dir / "summary.json", handoff / DRIFT_JSON)
    _write_gzip(lines, handoff / RAW)
    table, pred = slice_outputs(handoff, cfg)
    write_parquet(table, handoff / FEATURES)
    write_parquet(pred, handoff / PREDICTIONS)

    built_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    the_facts = facts(handoff, built_at, sources, drift_report)
    files = sorted(p for p in handoff.rglob("*")
                   if p.is_file() and not p.is_symlink() and p.relative_to(handoff).as_posix() not in LINKS)
    manifest = {
        "built_at": built_at,
        "links": dict(LINKS),
        "files": {p.relative_to(handoff).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size} for p in files},
        "facts": the_facts,
    }
    (handoff / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (handoff / NOTE).write_text(render_note(the_facts))
    return manifest


def check(handoff: Path, cfg: Config, repo: Path = REPO_ROOT) -> list[str]:
    """Every problem that makes the handoff incomplete or stale; empty when it is complete and current."""
    if not (handoff / MANIFEST).is_file():
        return [f"{handoff / MANIFEST} missing: run make handoff"]
    manifest = json.loads((handoff / MANIFEST).read_text())
    problems = []
    for name, target in LINKS.items():
        problems += _check_link(handoff / name, target, repo)
    wanted = [RAW, FEATURES, PREDICTIONS, EVAL_PDF, EVAL_JSON, DRIFT_JSON, f"{ARTIFACTS}/{SUMMARY_FILE}",
              manifest.get("facts", {}).get("drift_report", "evidently/*.html")]
    listed = manifest.get("files", {})
    problems += [f"{name}: not in the manifest" for name in wanted if name not in listed]
    for name, entry in listed.items():
        path = handoff / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256(path) != entry["sha256"]:
            problems.append(f"{name}: changed since the handoff was built")
    extra = {p.relative_to(handoff).as_posix() for p in handoff.rglob("*") if p.is_file() and not p.is_symlink()}
    extra -= set(listed) | {MANIFEST, NOTE} | set(LINKS)
    problems += [f"{name}: not in the manifest" for name in sorted(extra)]
    if problems:
        return problems
    return problems + _check_current(handoff, cfg, manifest, repo)


def _check_link(path: Path, target: str, repo: Path) -> list[str]:
    if path.is_symlink():
        if Path(path.readlink()).as_posix() != f"../{target}":
            return [f"{path.name}: links to {path.readlink()}, not ../{target}"]
        return [] if (repo / target).is_file() else [f"{path.name}: its target {target} is missing"]
    if path.is_file() and path.read_text().strip() == f"../{target}":  # a checkout without symlinks
        return [] if (repo / target).is_file() else [f"{path.name}: its target {target} is missing"]
    return [f"{path.name}: missing (a link to ../{target})"]


def _check_current(handoff: Path, cfg: Config, manifest: dict[str, Any], repo: Path) -> list[str]:
    problems = []
    summary = json.loads((handoff / ARTIFACTS / SUMMARY_FILE).read_text())
    if tuple(summary["features"]) != tuple(cfg.features.model_features):
        problems.append("the model takes other features than config.yaml names: retrain and run make handoff")
        return problems
    table, pred = slice_outputs(handoff, cfg)
    for name, now in ((FEATURES, table), (PREDICTIONS, pred)):
        kept = pd.read_parquet(handoff / name)
        try:
            pd.testing.assert_frame_equal(kept, now, check_exact=False, rtol=1e-9, atol=1e-12)
        except AssertionError as exc:
            first = str(exc).strip().splitlines()[0]
            problems.append(f"{name}: not what the current code makes of {RAW} ({first}): run make handoff")
    the_facts = facts(handoff, manifest["built_at"], manifest["facts"]["slice"]["sources"],
                      manifest["facts"]["drift_report"])
    if json.loads(json.dumps(the_facts)) != manifest["facts"]:
        problems.append(f"{MANIFEST}: its facts differ from the files they were read from: run make handoff")
    if (handoff / NOTE).read_text() != render_note(the_facts):
        problems.append(f"{NOTE}: the note does not match the run's figures: run make handoff")
    card = repo / LINKS["model_card_v1.md"]
    if card.is_file() and summary["trained_at"] not in card.read_text():
        problems.append(f"{LINKS['model_card_v1.md']}: written from another run than the handoff: run make handoff")
    return problems


def latest_run_differs(handoff: Path, outputs: Outputs) -> str | None:
    """A line when the workspace's last run is not the one handed off (not an error: a reminder)."""
    mine = outputs.artifacts / SUMMARY_FILE
    kept = handoff / ARTIFACTS / SUMMARY_FILE
    if not mine.is_file() or not kept.is_file():
        return None
    ours, theirs = json.loads(mine.read_text())["trained_at"], json.loads(kept.read_text())["trained_at"]
    if ours == theirs:
        return None
    return f"your last run ({ours}) is not the one handed off ({theirs}): make handoff hands it off"
