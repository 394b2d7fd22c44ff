"""Following the README changes no tracked file.

Every command of README.md and handoff/README.md (code blocks and inline code) is either run
here, in order, in a copy of the working tree that is a git repository of its own, or skipped
for a stated reason (it needs a broker, Docker, the network or a terminal, it serves until
stopped, or it is meant to rewrite the committed examples). After the runnable ones, ``git status`` of the copy must be clean.
The copy borrows this checkout's .venv; PYTHONPATH points the scripts at the copy's packages.
It takes minutes (make demo and the steps after it), so `make test` leaves it to `make check-readme`.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testkit import PROJECT_ENV

from common.config import REPO_ROOT

READMES = ("README.md", "handoff/README.md")
STARTS = ("make ", ".venv/bin/python ", "bash ", "curl ", "docker ", "brew ", "mkdir ", "cp ")
SKIP = [  # (pattern, why it does not run here)
    (r"^make (kafka|kafka-down|serve|drift|rollback|rollforward|serving-status)\b", "needs a running broker or API"),
    (r"^make (live-demo|kafka-jars)\b", "starts brokers and services for minutes, or fetches jars from Maven"),
    (r"^make (ingest|featurize)\b|ws_ingest\.py|features/featurizer\.py|kafka_consume_check\.py|feed_features\.py",
     "needs Coinbase or a broker"),
    (r"^curl |^docker |^make stack", "needs the API or a Docker engine"),
    (r"local_kafka\.py (start|stop)", "starts or stops a broker (tests/streaming start Apache Kafka themselves)"),
    (r"^brew ", "macOS only"),
    (r"^make mlflow-ui|jupyter lab|replay_ws\.py", "a server until Ctrl-C (tests/project/test_mlflow_ui.py starts the UI)"),
    (r"^make (bench|bench-record|load-test)\b", "minutes of benchmarks (the writer's default is tested in tests/unit)"),
    (r"^make (test|check-readme)\b|-m pytest", "the test suite and this check"),
    (r"^make (setup|clean)\b", "the copy borrows this checkout's .venv"),
    (r"\bmake handoff\b", "meant to rewrite the committed handoff/ and docs/"),
]
PLACEHOLDER = re.compile(r"\b[A-Z]{2,}\b|\|")


def _clean(command: str) -> str:
    """README notation to a command: optional parts kept when they name a real value, else dropped."""
    def option(match: re.Match) -> str:
        inner = match.group(1)
        return "" if PLACEHOLDER.search(inner) else inner
    command = re.sub(r"\[([^\[\]]*)\]", option, command)
    return re.sub(r"\s+", " ", command).strip()


def readme_commands(text: str) -> list[str]:
    """Commands in code blocks (continuations joined, comments cut) and in inline code, in order."""
    found: list[str] = []
    for block, inline in re.findall(r"```(?:bash|sh)?\n(.*?)```|`([^`\n]+)`", text, re.DOTALL):
        lines = block.replace("\\\n", " ").splitlines() if block else [inline]
        for line in lines:
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith(STARTS):
                found.append(_clean(line))
    return list(dict.fromkeys(found))


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIP if re.search(pattern, command)), None)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree's files that git tracks or would track, as a repository of its own."""
    root = tmp_path_factory.mktemp("readme") / "repo"
    names = _git(REPO_ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, names):
        source, target = REPO_ROOT / name, root / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    (root / ".venv").symlink_to(REPO_ROOT / ".venv")
    # What `make ingest` would have mirrored: a real recording, as plain NDJSON in data/raw/.
    frames = REPO_ROOT / "data/sample/btcusd-2026-04-05-frames/BTC_USD.ndjson.gz"
    (root / "data/raw/capture.ndjson").write_bytes(gzip.decompress(frames.read_bytes()))
    for args in (("init", "-q"), ("add", "-A"), ("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")):
        _git(root, *args)
    return root


def test_every_readme_command_is_run_or_skipped_for_a_reason() -> None:
    commands = [c for name in READMES for c in readme_commands((REPO_ROOT / name).read_text())]
    runnable = [c for c in commands if skip_reason(c) is None]
    assert "make demo" in runnable and any(c.startswith(".venv/bin/python models/train.py") for c in runnable)
    unknown = [c for c in runnable if not c.startswith((".venv/bin/python ", "make ", "mkdir ", "cp "))]
    assert not unknown, f"no rule says whether these run here: {unknown}"


@pytest.mark.integration
@pytest.mark.readme_walk
def test_following_the_readme_leaves_git_status_clean(copy: Path) -> None:
    commands = list(dict.fromkeys(c for name in READMES for c in readme_commands((copy / name).read_text())))
    # A user's shell: none of the settings that tests (or MLflow, in this process) may have exported.
    env = {k: v for k, v in os.environ.items() if k not in (*PROJECT_ENV, "BENCH_REPORT")}
    env.update(PYTHONPATH=str(copy), VOLSPIKE_PROGRESS="0")
    ran = []
    for command in commands:
        if skip_reason(command) is not None:
            continue
        shell = re.sub(r"^make ", "make -o .venv/.installed ", command)  # the borrowed venv is set up
        proc = subprocess.run(["bash", "-c", shell], cwd=copy, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        ran.append(command)
        dirty = _git(copy, "status", "--porcelain", "--untracked-files=all")
        assert not dirty, f"after `{command}`, git status shows:\n{dirty}"
    for output in ("data/processed/features.parquet", "data/processed/features_live.parquet",
                   "data/processed/rejects.ndjson", "models/artifacts/summary.json", "models/challenger/summary.json",
                   "reports/model_eval.pdf", "reports/model_card_v1.md", "reports/evidently/summary.json",
                   "reports/predictions.parquet"):
        assert (copy / output).is_file(), f"{output} was not written: did the commands run? ({ran})"
