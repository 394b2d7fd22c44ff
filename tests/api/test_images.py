"""The images, checked without a Docker engine: the Dockerfiles pass hadolint, the serving dependency
sets keep requirements.txt's pins, and Dockerfile.serving's own install steps, replayed in a clean
virtual environment with only the serving set, give a working API that honours config.yaml."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest
import yaml

from common.config import REPO_ROOT
from serving_helpers import free_port, wait_until
from testkit import PROJECT_ENV

DOCKERFILES = sorted((REPO_ROOT / "docker").glob("Dockerfile.*"))
# RUN commands that cannot run outside a container; everything else is replayed.
NOT_REPLAYED = ("useradd", "chown")


def pins(path: Path) -> dict[str, str]:
    """{package: version} of the ``name==version`` lines of a requirements file (markers dropped)."""
    out = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if match:
            out[match.group(1).lower().replace("_", "-")] = match.group(2)
    return out


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_dockerfiles_pass_hadolint(dockerfile):
    tool = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert tool, "hadolint is not installed: run `make docker-lint-tool` (make test does)"
    result = subprocess.run([tool, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_serving_sets_keep_the_pins_of_requirements_txt():
    full = pins(REPO_ROOT / "requirements.txt")
    serving = pins(REPO_ROOT / "requirements-serving.txt")
    assert serving["mlflow-skinny"] == full["mlflow"]  # the client of the same server version
    for name, version in serving.items():
        if name != "mlflow-skinny":
            assert full.get(name) == version, f"{name}: {version} here, {full.get(name)} in requirements.txt"
    monitor = REPO_ROOT / "requirements-monitor.txt"
    assert "-r requirements-serving.txt" in monitor.read_text()
    for name, version in pins(monitor).items():
        assert full.get(name) == version, name
    for unwanted in ("jupyter", "pytest", "hypothesis", "schemathesis", "matplotlib", "reportlab", "mlflow"):
        assert unwanted not in serving, unwanted


def dockerfile_steps(path: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(ARG defaults, [(instruction, argument)]) with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    args, steps = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name] = default
        steps.append((instruction, rest))
    return args, steps


@pytest.mark.integration
def test_the_serving_image_install_steps_give_a_working_api_in_a_clean_venv(tmp_path):
    """Replays Dockerfile.serving (COPY and RUN, WORKDIR /app -> a temporary folder) with pip into a fresh venv."""
    args, steps = dockerfile_steps(REPO_ROOT / "docker" / "Dockerfile.serving")
    app, env_dir = tmp_path / "app", tmp_path / "venv"
    app.mkdir()
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if k not in (*PROJECT_ENV, "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", PIP_DISABLE_PIP_VERSION_CHECK="1")
    replayed = []
    for instruction, rest in steps:
        if instruction == "COPY":
            *sources, _dest = shlex.split(rest)
            for source in sources:
                origin = REPO_ROOT / source
                copy = shutil.copytree if origin.is_dir() else shutil.copy2
                copy(origin, app / source.rstrip("/"), **({"dirs_exist_ok": True} if origin.is_dir() else {}))
        elif instruction == "RUN":
            command = rest
            for name, default in args.items():
                command = command.replace(f'"${{{name}}}"', default).replace(f"${{{name}}}", default)
            for part in (p.strip() for p in command.split("&&")):
                if part.startswith(NOT_REPLAYED):
                    continue
                assert part.startswith(("pip install", "mkdir")), f"a RUN step this test does not know: {part}"
                done = subprocess.run(part, shell=True, cwd=app, env=env, capture_output=True, text=True,
                                      timeout=900)
                assert done.returncode == 0, f"{part}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
                replayed.append(part)
    assert any("requirements-serving.txt" in p for p in replayed) and any("-e ." in p for p in replayed)
    # The build context's models/artifacts: a run's (after `make demo`) or, as here, the handed-off ones.
    artifacts = app / "models" / "artifacts"
    shutil.copytree(REPO_ROOT / "handoff" / "models" / "artifacts", artifacts, dirs_exist_ok=True)
    selected = json.loads((artifacts / "summary.json").read_text())["selected"]

    python = str(bin_dir / "python")
    installed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                               env=env, timeout=60).stdout.lower()
    for absent in ("jupyter", "pytest", "evidently", "matplotlib", "mlflow=="):
        assert absent not in installed, absent

    # config.yaml of the image's folder is the one read (a regular install would miss it)
    config = yaml.safe_load((app / "config.yaml").read_text())
    config["serving"]["rate_limit_per_minute"] = 7
    (app / "config.yaml").write_text(yaml.safe_dump(config))
    for script in ("serve_api.py", "live_scorer.py", "rollback.py"):
        helped = subprocess.run([python, f"scripts/{script}", "--help"], cwd=app, env=env, capture_output=True,
                                text=True, timeout=120)
        assert helped.returncode == 0, helped.stderr[-2000:]
    port = free_port()
    server_env = {**env, "MODEL_VARIANT_FILE": str(tmp_path / "variant"), "MODEL_URI": str(artifacts / selected),
                  "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "api.log", "wb") as log:
        server = subprocess.Popen([python, str(app / "scripts" / "serve_api.py"), "--port", str(port)], cwd=tmp_path,
                                  env=server_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            assert server.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 180, "the API from the clean venv", 0.5)
        version = httpx.get(f"{url}/version", timeout=5).json()
        assert version["rate_limit_per_minute"] == 7  # from the app folder's config.yaml, run from elsewhere
        example = (REPO_ROOT / "docs" / "predict_example.json").read_bytes()
        predicted = httpx.post(f"{url}/predict", content=example, headers={"content-type": "application/json"},
                               timeout=10)
        assert predicted.status_code == 200, predicted.text
        assert httpx.get(f"{url}/docs-assets/swagger-ui-bundle.js", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(30)
