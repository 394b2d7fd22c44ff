"""Start the MLflow UI on the project's store and print the address of the experiment's runs.

    python scripts/mlflow_ui.py [--port 5000] [--host 127.0.0.1] [--mlflow-uri URI]     (make mlflow-ui)

MLflow 3 opens on its "Traces" pages unless told otherwise: the address printed opens
the experiment's training runs, and the experiment is marked as model development so the UI
keeps to runs and models. The server runs with this venv's MLflow until Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from common.config import ConfigError, load_config
from common.logs import setup_logging

log = logging.getLogger(__name__)
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlflow-uri", help="tracking store (default: mlflow.tracking_uri, env MLFLOW_TRACKING_URI)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def runs_address(host: str, port: int, experiment_id: str | None) -> str:
    """The UI's page of an experiment's runs (or its home), in the machine-learning view."""
    page = f"#/experiments/{experiment_id}/runs" if experiment_id else "#/"
    return f"http://{host}:{port}/{page}?workflowType=machine_learning"


def experiment_id(tracking_uri: str, name: str) -> str | None:
    """The experiment's id, marked as model development; None before the first training run."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    try:
        found = client.get_experiment_by_name(name)
        if found is None:
            return None
        if found.tags.get(KIND_TAG) != KIND:
            client.set_experiment_tag(found.experiment_id, KIND_TAG, KIND)
    except MlflowException as exc:
        raise ConfigError(f"MLflow store {tracking_uri} cannot be read ({str(exc).splitlines()[0]})") from exc
    return found.experiment_id


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = load_config(args.config, overrides={"mlflow.tracking_uri": args.mlflow_uri})
        uri = cfg.mlflow.tracking_uri
        if uri.startswith(("http://", "https://")):
            print(f"mlflow_ui: {uri} is an MLflow server already: open it in a browser", file=sys.stderr)
            return 2
        found = experiment_id(uri, cfg.mlflow.experiment)
    except ConfigError as exc:
        print(f"mlflow_ui: {exc}", file=sys.stderr)
        return 2
    if found is None:
        log.warning("no experiment %r in %s yet: train first (make demo)", cfg.mlflow.experiment, uri)
    print(f"MLflow UI for {uri}: open {runs_address(args.host, args.port, found)}  (Ctrl-C stops it)", flush=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # a lean server: no job runner
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--host", args.host, "--port", str(args.port), "--workers", "1"]
    if os.name == "posix":
        os.execve(sys.executable, cmd, env)  # the server takes this process: signals reach it directly
    try:
        return subprocess.run(cmd, env=env, check=False).returncode
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
