"""Command-line options shared by the serving scripts (API, live scorer, drift monitor, rollback)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Where the served model comes from; every flag defaults to config.yaml / the environment."""
    group = parser.add_argument_group("model")
    group.add_argument("--variant", choices=("ml", "baseline"),
                       help="variant while the variant file does not exist "
                            "(default: serving.variant, env MODEL_VARIANT)")
    group.add_argument("--model-uri", help="ml model: models:/NAME@ALIAS or a folder (default: serving.ml_model, "
                                           "env MODEL_URI, else models:/<mlflow.model_name>@champion)")
    group.add_argument("--artifacts-dir", type=Path,
                       help="local models: fallback for ml and home of the baseline (default: serving.artifacts_dir)")
    group.add_argument("--variant-file", type=Path,
                       help="the rollback switch (default: serving.variant_file, env MODEL_VARIANT_FILE)")
    group.add_argument("--mlflow-uri",
                       help="MLflow tracking URI (default: mlflow.tracking_uri, env MLFLOW_TRACKING_URI)")
    parser.add_argument("--config", type=Path, help="config file (default: config.yaml at the repository root)")
    parser.add_argument("-v", "--verbose", action="store_true")


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted config overrides of ``add_model_args`` (None = not given)."""
    return {
        "serving.variant": args.variant,
        "serving.ml_model": args.model_uri,
        "serving.artifacts_dir": str(args.artifacts_dir) if args.artifacts_dir else None,
        "serving.variant_file": str(args.variant_file) if args.variant_file else None,
        "mlflow.tracking_uri": args.mlflow_uri,
    }
