"""Fixtures for the streaming tests: a real local broker, a fake Coinbase server, subprocesses.

Every wait is bounded; every service is started by a fixture on a free loopback port and
stopped at teardown.
"""

from __future__ import annotations

import pytest

from coinbase_fake import FakeCoinbase, load_frames
from streaming_helpers import FRAMES_FILE


@pytest.fixture(scope="session")
def frames() -> list[dict]:
    return load_frames(FRAMES_FILE)


@pytest.fixture
def coinbase(frames):
    """Factory: ``coinbase(plans, frames=None, **options)`` starts a fake server and returns it."""
    servers: list[FakeCoinbase] = []

    def start(plans: list[Plan], subset: list[dict] | None = None, **options) -> FakeCoinbase:
        server = FakeCoinbase(frames if subset is None else subset, plans, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
