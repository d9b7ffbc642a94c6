"""One simulator process per test module, reset before each test; ``connect`` opens welcomed
KuCoin sessions and closes them after the test."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import websocket

from tests.simulator.peer import RECV_TIMEOUT, Client, Connect, bullet, get_state, post, ws_url
from tests.support import Simulator, wait_until


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    running = Simulator("--seed", "7", rate=20, ping_ms=None)
    yield running
    running.stop()


@pytest.fixture
def base(sim: Simulator) -> Iterator[str]:
    """A healthy exchange at 20 ticks/s, with no connections left over from other tests."""
    post(sim.url, "/_sim/reset")
    post(sim.url, "/_sim/rate", {"rate": 20})
    wait_until(lambda: get_state(sim.url)["connections"] == 0, 3, interval=0.02, what="no open connections")
    yield sim.url
    post(sim.url, "/_sim/drop", {"mode": "close"})


@pytest.fixture
def connect(base: str) -> Iterator[Connect]:
    clients: list[Client] = []

    def _connect(connect_id: str = "conn-1", *, welcome: bool = True) -> Client:
        ws = websocket.create_connection(ws_url(bullet(base), connect_id), timeout=RECV_TIMEOUT)
        client = Client(ws)
        clients.append(client)
        if welcome:
            assert json.loads(client.recv_text()) == {"id": connect_id, "type": "welcome"}
        return client

    yield _connect
    for client in clients:
        client.close()
