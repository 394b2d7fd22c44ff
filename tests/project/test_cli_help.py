"""Every command-line entry point answers --help with its usage and does nothing else."""

from __future__ import annotations

import runpy
import subprocess
from pathlib import Path

import pytest

from common.config import REPO_ROOT

PYTHON_CLIS = sorted(REPO_ROOT.glob("scripts/*.py")) + [
    REPO_ROOT / "features/featurizer.py", REPO_ROOT / "models/train.py", REPO_ROOT / "models/infer.py"]
SHELL_CLIS = sorted(REPO_ROOT.glob("scripts/*.sh"))


def _tracked_and_unignored_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def unchanged_tree():
    """--help must not write anything: the tree is the same after all of them."""
    before = _tracked_and_unignored_state()
    yield
    assert _tracked_and_unignored_state() == before, "--help changed files in the repository"


@pytest.mark.parametrize("path", PYTHON_CLIS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_help_prints_usage_and_exits_0(path: Path, capsys: pytest.CaptureFixture, unchanged_tree) -> None:
    """main(["--help"]) in this process (the modules the scripts share are imported once)."""
    namespace = runpy.run_path(str(path), run_name=f"help_{path.stem}")
    with pytest.raises(SystemExit) as exit_info:
        namespace["main"](["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None)
    assert out.lower().startswith("usage:"), out[:300]
    assert len(out.splitlines()) >= 3, "a usage line and what the command does"


@pytest.mark.parametrize("path", SHELL_CLIS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_shell_help_prints_usage_and_exits_0(path: Path, unchanged_tree) -> None:
    proc = subprocess.run(["bash", str(path), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.lower().startswith("usage:"), proc.stdout[:300] + proc.stderr[-300:]


def test_the_demo_answers_help_without_running() -> None:
    proc = subprocess.run(["bash", str(REPO_ROOT / "scripts/demo.sh"), "--help"], capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin", "PY": "/nonexistent/python"})
    assert proc.returncode == 0 and "make demo" in proc.stdout and "== 1/8" not in proc.stdout


def test_the_demo_refuses_an_unknown_argument() -> None:
    proc = subprocess.run(["bash", str(REPO_ROOT / "scripts/demo.sh"), "--fast"], capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin", "PY": "/nonexistent/python"})
    assert proc.returncode == 2 and "unknown argument '--fast'" in proc.stderr
