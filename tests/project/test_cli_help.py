"""Every command-line entry point answers --help with its usage and does nothing else."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from common.config import REPO_ROOT

PYTHON_CLIS = sorted(REPO_ROOT.glob("scripts/*.py")) + [
    REPO_ROOT / "features/featurizer.py", REPO_ROOT / "models/train.py", REPO_ROOT / "models/infer.py"]
SHELL_CLIS = sorted(REPO_ROOT.glob("scripts/*.sh"))


def _command(path: Path) -> list[str]:
    return ["bash", str(path)] if path.suffix == ".sh" else [sys.executable, str(path)]


def _tracked_and_unignored_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def helps() -> dict[Path, subprocess.CompletedProcess]:
    before = _tracked_and_unignored_state()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {path: pool.submit(subprocess.run, [*_command(path), "--help"], cwd=REPO_ROOT,
                                     capture_output=True, text=True, timeout=120)
                   for path in PYTHON_CLIS + SHELL_CLIS}
        results = {path: future.result() for path, future in futures.items()}
    assert _tracked_and_unignored_state() == before, "--help changed files in the repository"
    return results


@pytest.mark.parametrize("path", PYTHON_CLIS + SHELL_CLIS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_help_prints_usage_and_exits_0(helps: dict, path: Path) -> None:
    proc = helps[path]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.lower().startswith("usage:"), proc.stdout[:300]
    assert len(proc.stdout.splitlines()) >= 3, "a usage line and what the command does"


def test_the_demo_answers_help_without_running() -> None:
    proc = subprocess.run(["bash", str(REPO_ROOT / "scripts/demo.sh"), "--help"], capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin", "PY": "/nonexistent/python"})
    assert proc.returncode == 0 and "make demo" in proc.stdout and "== 1/8" not in proc.stdout


def test_the_demo_refuses_an_unknown_argument() -> None:
    proc = subprocess.run(["bash", str(REPO_ROOT / "scripts/demo.sh"), "--fast"], capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin", "PY": "/nonexistent/python"})
    assert proc.returncode == 2 and "unknown argument '--fast'" in proc.stderr
