"""Run the prediction API (uvicorn, one worker) with JSON logs.

    python scripts/serve_api.py                          # http://127.0.0.1:8000/docs
    python scripts/serve_api.py --host 0.0.0.0 --port 8000 --rate-limit 600

Model options default to config.yaml and the environment (MODEL_VARIANT, MODEL_URI,
MODEL_VARIANT_FILE, MLFLOW_TRACKING_URI, RATE_LIMIT_PER_MINUTE). /health answers 503 until
the model is loaded. SIGINT or SIGTERM stops it after the requests in flight.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from api.app import create_app
from api.cli import add_model_args, model_overrides
from api.logs import log_config
from api.serving import VariantError, holder_from_config
from common.config import ConfigError, load_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    parser.add_argument("--rate-limit", type=int, metavar="PER_MINUTE",
                        help="requests a minute per client on /predict, 0 = off "
                             "(default: serving.rate_limit_per_minute, env RATE_LIMIT_PER_MINUTE)")
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = "DEBUG" if args.verbose else "INFO"
    try:
        cfg = load_config(args.config, overrides={**model_overrides(args),
                                                  "serving.rate_limit_per_minute": args.rate_limit})
        if cfg.serving.rate_limit_per_minute < 0:
            raise ConfigError("the rate limit must be 0 (off) or a positive number of requests a minute")
        app = create_app(cfg, holder_from_config(cfg))
    except (ConfigError, VariantError) as exc:
        print(f"serve_api: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_config=log_config(level), access_log=False,
                timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
