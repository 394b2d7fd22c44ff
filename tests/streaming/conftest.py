"""Fixtures for the streaming tests: recorded frames and the offline market server.

Every wait is bounded; every service is started by a fixture on a free loopback port and
stopped at teardown.
"""

from __future__ import annotations

import pytest

from streaming.market import MarketServer, Plan, recorded_frames
from streaming_helpers import FRAMES_FILE, THREE_PRODUCTS_FILE

HEARTBEAT_S = 0.2  # well inside the ingestor's watchdog in the tests, even on a busy machine


@pytest.fixture(scope="session")
def frames() -> list[dict]:
    """20 minutes of real BTC-USD Advanced Trade frames (5,970)."""
    return recorded_frames([FRAMES_FILE])


@pytest.fixture(scope="session")
def three_products() -> list[dict]:
    """6,000 real Coinbase Exchange ticker messages of BTC, ETH and SOL, as Advanced Trade frames."""
    return recorded_frames([THREE_PRODUCTS_FILE])


@pytest.fixture
def coinbase(frames):
    """Factory: ``coinbase(plans, subset=None, **options)`` starts a market server and returns it."""
    servers: list[MarketServer] = []

    def start(plans: list[Plan], subset: list[dict] | None = None, **options) -> MarketServer:
        options.setdefault("heartbeat_s", HEARTBEAT_S)
        server = MarketServer(frames if subset is None else subset, plans, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
