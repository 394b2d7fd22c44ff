"""Run pip as if on another platform: ``python pip_for_platform.py '<marker env JSON>' install ...``.

pip's ``--platform`` picks wheels for the target but still evaluates environment markers
(``sys_platform == "linux"``) against this machine, for requirements.txt and for every
dependency's own markers. Here the marker environment is the target's, so the resolution is
the one a user on that platform gets.
"""

from __future__ import annotations

import json
import sys

from pip._internal.cli.main import main as pip_main
from pip._vendor.packaging import markers

target = {**markers.default_environment(), **json.loads(sys.argv[1])}
markers.default_environment = lambda: dict(target)  # read at every marker evaluation
sys.exit(pip_main(sys.argv[2:]))
