"""Fan-out mechanisms: a client that stops reading never delays others, is evicted, and
costs bounded memory. Asserts order and delivery, never wall-clock speed (see bench/)."""

import contextlib
import json
import socket

import gevent
import pytest

from pledge_ws.clients.connection import Connection
from pledge_ws.clients.hub import MAX_BROADCAST_LAG, Hub
from pledge_ws.core.book import entry_for
from pledge_ws.core.protocol import price_payload, text_frame
from pledge_ws.core.ticks import Tick
from pledge_ws.metrics import Metrics
from tests.support import Client, Simulator, raw_upgrade, wait_until


def stalled_client(port: int, path: str = "/ws") -> socket.socket:
    """Completes the WebSocket handshake, then never reads again (tiny receive window)."""
    sock, head = raw_upgrade(port, path, rcvbuf=1024)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


@pytest.fixture
def fast_sim():
    sim = Simulator(rate=200, symbols="PLGR-USDT")
    yield sim
    sim.stop()


def test_stalled_client_never_delays_others(service_factory, fast_sim):
    svc = service_factory(KUCOIN_API_URL=fast_sim.url, SLOW_CLIENT_TIMEOUT="60")
    svc.wait_ready()
    stalled = [stalled_client(svc.port) for _ in range(3)]
    good = Client(svc.ws_url)
    try:
        # Wait until the stalled clients' sockets are full and they are being conflated.
        wait_until(lambda: svc.metric("pledge_ws_frames_conflated_total") > 50, 30, what="stalled backlog")
        # From now on the good client receives every tick, in order, none skipped.
        seqs = [int(good.next_price()["seq"]) for _ in range(200)]
        tail = seqs[-150:]
        assert tail == list(range(tail[0], tail[0] + 150))
        assert svc.metric("pledge_ws_clients_evicted_total", 'reason="slow"') == 0
        assert svc.get("/readyz")[1]["connections"] == 4
    finally:
        good.close()
        for sock in stalled:
            sock.close()


def test_stalled_client_is_evicted_after_slow_client_timeout(service_factory, fast_sim):
    svc = service_factory(KUCOIN_API_URL=fast_sim.url, SLOW_CLIENT_TIMEOUT="1")
    svc.wait_ready()
    stalled = stalled_client(svc.port)
    good = Client(svc.ws_url)
    try:
        wait_until(lambda: svc.metric("pledge_ws_clients_evicted_total", 'reason="slow"') == 1, 30, what="eviction")
        wait_until(lambda: svc.get("/readyz")[1]["connections"] == 1, 5, what="the evicted connection to go")
        # Its socket was reset: reading what is left ends in an error or EOF, never hangs.
        stalled.settimeout(5)
        with pytest.raises(OSError):
            while stalled.recv(65536):
                pass
            raise ConnectionResetError("EOF")
        good.send("ping")
        assert good.next_price()["code"] == 0  # the well-behaved client never noticed
    finally:
        good.close()
        stalled.close()


def test_memory_held_for_a_stalled_client_is_bounded_by_a_constant():
    """A real socket pair whose reader never reads: the writer's backlog stays constant."""
    hub = Hub(["A-USDT", "B-USDT"], Metrics(), slow_client_timeout=3600)
    server, client = socket.socketpair()
    server.setblocking(False)
    conn = Connection(server, "test", hub)
    hub.attach(conn, ["A-USDT", "B-USDT"])
    largest_frame = 0
    peak = 0
    for n in range(20_000):
        symbol = "A-USDT" if n % 2 else "B-USDT"
        frame = text_frame(price_payload(Tick(symbol, f"{n}.123456", str(n + 1), 1_700_000_000_000)))
        largest_frame = max(largest_frame, len(frame))
        conn.send(frame, symbol)
        peak = max(peak, conn.backlog_bytes())
    assert conn.backlog_since is not None  # the socket really filled up
    assert peak <= 3 * largest_frame  # one partial frame + the latest frame of each symbol
    for _ in range(100):  # control frames are capped too: beyond the cap the client is dropped
        conn.send(b"x" * 30)
    assert conn.closed
    conn.release()
    client.close()
    server.close()
    gevent.sleep(0)


def _received_seqs(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := sock.recv(65536):
            data += chunk
    seqs = []
    while len(data) >= 2:
        length = data[1] & 0x7F
        seqs.append(json.loads(data[2 : 2 + length])["seq"])
        data = data[2 + length :]
    return seqs


def test_broadcaster_skips_only_ticks_superseded_while_it_lags():
    hub = Hub(["A-USDT"], Metrics(), slow_client_timeout=3600)
    server, client = socket.socketpair()
    server.setblocking(False)
    hub.attach(Connection(server, "test", hub), ["A-USDT"])
    ticks = [Tick("A-USDT", "1.5", str(n), 1_700_000_000_000) for n in range(1, 6)]
    for tick in ticks[:3]:
        hub.offer(entry_for(tick, None))
    gevent.sleep(MAX_BROADCAST_LAG + 0.05)  # the broadcaster is not even running: it lags
    broadcaster = gevent.spawn(hub.run_broadcaster)
    gevent.sleep(0.01)
    assert _received_seqs(client) == ["3"]  # 1 and 2 were superseded while it lagged
    for tick in ticks[3:]:  # keeping up: every tick goes out
        hub.offer(entry_for(tick, None))
        gevent.sleep(0.01)
    assert _received_seqs(client) == ["4", "5"]
    broadcaster.kill()
    client.close()
    server.close()
