"""The committed handoff/ is complete and current, and the check notices when it is not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pandas as pd
import pytest

from common.config import REPO_ROOT, load_config
from common.featurespec import FeatureSpec
from common.times import format_time_ns
from models import handoff as h

HANDOFF = REPO_ROOT / "handoff"


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def test_the_committed_handoff_is_complete_and_current(cfg) -> None:
    problems = h.check(HANDOFF, cfg)
    assert not problems, "\n".join(problems) + "\n(make demo && make handoff, then commit handoff/ and docs/)"


def test_it_holds_every_item_the_assignment_lists() -> None:
    names = {p.relative_to(HANDOFF).as_posix() for p in HANDOFF.rglob("*")}
    for item in ("compose.yaml", "Dockerfile.ingestor", ".env.example", "feature_spec.md", "model_card_v1.md",
                 "requirements.txt", h.RAW, h.FEATURES, h.EVAL_PDF, h.PREDICTIONS, h.NOTE,
                 f"{h.ARTIFACTS}/summary.json"):
        assert item in names, item
    note = (HANDOFF / h.NOTE).read_text()
    assert ("**Selected-base**" in note) != ("**Composite**" in note)
    facts = json.loads((HANDOFF / h.MANIFEST).read_text())["facts"]
    assert facts["drift_report"].startswith("evidently/") and facts["drift_report"].endswith(".html")
    assert facts["drift_report"] in names
    summary = json.loads((HANDOFF / h.ARTIFACTS / "summary.json").read_text())
    last = list(summary["models"][summary["selected"]]["metrics"].values())[-1]
    assert facts["trained_at"] == summary["trained_at"] and f"PR-AUC {last['pr_auc']:.3f}" in note
    seconds = (pd.Timestamp(facts["slice"]["end"]) - pd.Timestamp(facts["slice"]["start"])).total_seconds()
    assert 540 <= seconds < h.SLICE_S


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The handoff and the files it links to, in a throwaway repository layout."""
    shutil.copytree(HANDOFF, tmp_path / "handoff", symlinks=True)
    for target in h.LINKS.values():
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / target, tmp_path / target)
    return tmp_path


def _rehash(root: Path, name: str) -> None:
    """Record a file's new checksum, as if the handoff had been built with it."""
    manifest = json.loads((root / "handoff" / h.MANIFEST).read_text())
    manifest["files"][name]["sha256"] = h.sha256(root / "handoff" / name)
    (root / "handoff" / h.MANIFEST).write_text(json.dumps(manifest))


def test_the_copy_passes(copy: Path, cfg) -> None:
    assert h.check(copy / "handoff", cfg, repo=copy) == []


def test_a_missing_item_a_changed_copy_and_a_stray_file_are_named(copy: Path, cfg) -> None:
    base = copy / "handoff"
    (base / h.EVAL_PDF).unlink()
    meta = base / h.ARTIFACTS / "zscore" / "model.json"
    meta.write_text(meta.read_text().replace('"threshold"', '"threshold" ', 1))
    (base / "notes.txt").write_text("scratch")
    (base / "compose.yaml").unlink()
    problems = h.check(base, cfg, repo=copy)
    assert f"{h.EVAL_PDF}: missing" in problems
    assert f"{h.ARTIFACTS}/zscore/model.json: changed since the handoff was built" in problems
    assert "notes.txt: not in the manifest" in problems
    assert "compose.yaml: missing (a link to ../docker/compose.yaml)" in problems


def test_a_broken_link_is_named(copy: Path, cfg) -> None:
    (copy / "docker" / "Dockerfile.ingestor").unlink()
    assert h.check(copy / "handoff", cfg, repo=copy) == ["Dockerfile.ingestor: its target docker/Dockerfile.ingestor is missing"]


def test_a_link_stored_as_text_counts(copy: Path, cfg) -> None:
    """A checkout with core.symlinks off writes the link's target into a small file."""
    link = copy / "handoff" / ".env.example"
    link.unlink()
    link.write_text("../.env.example")
    assert h.check(copy / "handoff", cfg, repo=copy) == []


def test_features_the_current_code_would_not_make_are_stale(copy: Path, cfg) -> None:
    path = copy / "handoff" / h.FEATURES
    table = pd.read_parquet(path)
    table.loc[10, "rv_60s"] = table.loc[10, "rv_60s"] * 1.5
    table.to_parquet(path, index=False)
    _rehash(copy, h.FEATURES)
    problems = h.check(copy / "handoff", cfg, repo=copy)
    assert len(problems) == 1 and problems[0].startswith(f"{h.FEATURES}: not what the current code makes")


def test_predictions_the_model_would_not_make_are_stale(copy: Path, cfg) -> None:
    path = copy / "handoff" / h.PREDICTIONS
    pred = pd.read_parquet(path)
    pred["alert"] = ~pred["alert"]
    pred.to_parquet(path, index=False)
    _rehash(copy, h.PREDICTIONS)
    problems = h.check(copy / "handoff", cfg, repo=copy)
    assert any(p.startswith(f"{h.PREDICTIONS}: not what the current code makes") for p in problems)
    assert any(p.startswith(f"{h.MANIFEST}: its facts differ") for p in problems)  # the alert count moved


def test_a_note_that_misquotes_the_run_is_stale(copy: Path, cfg) -> None:
    note = copy / "handoff" / h.NOTE
    facts = json.loads((copy / "handoff" / h.MANIFEST).read_text())["facts"]
    last = list(facts["metrics"].values())[-1]
    quoted = f"PR-AUC {last['pr_auc']:.3f}"
    note.write_text(note.read_text().replace(quoted, "PR-AUC 0.999"))
    assert h.check(copy / "handoff", cfg, repo=copy) == [f"{h.NOTE}: the note does not match the run's figures: run make handoff"]


def test_a_model_card_of_another_run_is_stale(copy: Path, cfg) -> None:
    card = copy / "docs" / "model_card_v1.md"
    trained_at = json.loads((copy / "handoff" / h.ARTIFACTS / "summary.json").read_text())["trained_at"]
    card.write_text(card.read_text().replace(trained_at, "2001-01-01T00:00:00+00:00"))
    assert h.check(copy / "handoff", cfg, repo=copy) == [
        "docs/model_card_v1.md: written from another run than the handoff: run make handoff"]


def test_a_model_for_other_features_is_stale(copy: Path, cfg) -> None:
    other = cfg.__class__(**{**cfg.__dict__, "features": FeatureSpec(windows_s=(30.0, 60.0))})
    assert h.check(copy / "handoff", other, repo=copy) == [
        "the model takes other features than config.yaml names: retrain and run make handoff"]


def test_reports_of_another_run_are_refused() -> None:
    summary = json.loads((HANDOFF / h.ARTIFACTS / "summary.json").read_text())
    evaluation = json.loads((HANDOFF / h.EVAL_JSON).read_text())
    drift = json.loads((HANDOFF / h.DRIFT_JSON).read_text())
    outputs = h.Outputs(Path("models/artifacts"), Path("reports/model_eval.json"), Path("reports/evidently"))
    h._consistent(summary, evaluation, drift, outputs)  # the handoff's own files agree
    with pytest.raises(h.HandoffError, match=r"\(selected differ\): rerun scripts/generate_eval_report"):
        h._consistent(summary, {**evaluation, "selected": "another-model"}, drift, outputs)
    h._consistent(summary, {"selected": summary["selected"]}, {}, outputs)  # only what both files state is compared
    if "train_vs_test" in drift:
        moved = {**drift, "train_vs_test": {**drift["train_vs_test"], "current": {"start": "x", "end": "y", "rows": 1}}}
        with pytest.raises(h.HandoffError, match="generate_evidently_report"):
            h._consistent(summary, evaluation, moved, outputs)
    challenger = {**summary, "mlflow": {"registry": {"alias": "challenger"}}}
    with pytest.raises(h.HandoffError, match="@challenger"):
        h._consistent(challenger, {**evaluation, "registry": {"alias": "challenger"}}, drift, outputs)


def _flat(seconds: float) -> bytes:
    ts = format_time_ns(int(1_764_979_200e9 + seconds * 1e9))
    return orjson.dumps({"timestamp": ts, "product_id": "BTC-USD", "price": "100", "best_bid": "99", "best_ask": "101"})


def test_the_raw_slice_is_the_first_ten_minutes_as_recorded() -> None:
    lines = [b"not json"] + [_flat(s) for s in range(0, 700, 50)]
    kept, info = h.raw_slice(lines)
    assert kept == [b"not json\n"] + [_flat(s) + b"\n" for s in range(0, 600, 50)]
    assert info["complete"] and info["lines"] == 13
    assert (info["end_ns"] - info["start_ns"]) / 1e9 == 550
    kept, info = h.raw_slice(lines[:5])
    assert not info["complete"] and len(kept) == 5


@pytest.mark.parametrize("symlinks", [True, False], ids=["symlinks", "no-symlink-rights"])
def test_a_rebuild_from_the_same_run_reproduces_the_handoff(copy: Path, cfg, symlinks: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """build() from the handed-off run's own files gives the same figures, and passes the check."""
    kept = copy / "kept"
    shutil.copytree(copy / "handoff", kept, symlinks=True)
    if not symlinks:
        def refuse(self, target):
            raise OSError("symbolic link privilege not held")
        monkeypatch.setattr(Path, "symlink_to", refuse)
    outputs = h.Outputs(kept / h.ARTIFACTS, kept / h.EVAL_JSON, kept / "evidently", (str(REPO_ROOT / h.BUNDLED_RAW),))
    manifest = h.build(copy / "handoff", cfg, outputs)
    before = json.loads((kept / h.MANIFEST).read_text())
    assert manifest["files"] == before["files"]
    assert {**manifest["facts"], "built_at": None} == {**before["facts"], "built_at": None}
    assert h.check(copy / "handoff", cfg, repo=copy) == []
    assert (copy / "handoff" / "compose.yaml").is_symlink() == symlinks
