"""The packages stand in floors and each imports only the floors below it.

common < features < streaming, models < api < scripts. The command-line entry points that live
inside a package (``features/featurizer.py``, ``models/train.py``, ``models/infer.py``) stand on
the scripts floor: they wire the floors together.
"""

from __future__ import annotations

import ast
from pathlib import Path

from common.config import REPO_ROOT

FLOORS = {"common": 0, "features": 1, "streaming": 2, "models": 2, "api": 3, "scripts": 4}
ENTRY_POINTS = {"features/featurizer.py", "models/train.py", "models/infer.py"}


def _floor(path: Path) -> int:
    relative = path.relative_to(REPO_ROOT).as_posix()
    return FLOORS["scripts"] if relative in ENTRY_POINTS else FLOORS[relative.split("/")[0]]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def upward_imports() -> set[tuple[str, str]]:
    """(file, module) for every import of a floor at or above the file's own, other than itself."""
    found = set()
    for package in FLOORS:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            own = _floor(path)
            for module in _imports(path):
                top = module.split(".")[0]
                if top in FLOORS and top != path.relative_to(REPO_ROOT).parts[0] and FLOORS[top] >= own:
                    found.add((path.relative_to(REPO_ROOT).as_posix(), module))
    return found


def test_each_floor_imports_only_floors_below() -> None:
    unexpected = upward_imports()
    assert not unexpected, f"imports from the same or a higher floor: {sorted(unexpected)}"


def test_the_ground_floor_loads_without_the_floors_above() -> None:
    """The config loader and the shared helpers work with nothing of ours above them imported."""
    import subprocess
    import sys

    probe = ("import sys; import common.config, common.featurespec, common.times, common.benchreport, "
             "common.progress, common.logs, common.kafka; "
             "above = sorted(m for m in sys.modules if m.split('.')[0] in "
             "{'features', 'streaming', 'models', 'api', 'scripts'}); print(above); sys.exit(bool(above))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
