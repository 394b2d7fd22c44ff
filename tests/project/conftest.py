"""The project-level checks: installation per platform, the handoff, CLIs, the README's commands."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "readme_walk: runs the README's commands in a copy of the tree (minutes; make check-readme)")
