"""The hub's lossless replay seam and recovery's I/O (replay.py), on real socket pairs.

A reader that reads slowly or not at all; no mocks, no server process.
"""

from __future__ import annotations

import json
import socket
import time

import gevent

from pledge_ws.clients.connection import REPLAY_LIVE_LIMIT, Connection
from pledge_ws.clients.hub import Hub
from pledge_ws.clients.replay import Replayer
from pledge_ws.core.book import PriceBook
from pledge_ws.core.ticks import Tick
from pledge_ws.metrics import Metrics


def tcp_pair(rcvbuf: int) -> tuple[socket.socket, socket.socket]:
    """A loopback TCP connection (server side non-blocking) whose reader has a small window."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    server.setblocking(False)
    return server, client


def frames_from(data: bytes) -> list[dict]:
    """Parse unmasked server text frames (7- and 16-bit lengths)."""
    out = []
    while data:
        length, start = data[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(data[2:4], "big"), 4
        out.append(json.loads(data[start : start + length]))
        data = data[start + length :]
    return out


def read_all(sock: socket.socket, quiet: float = 0.2, chunk: int = 65536) -> bytes:
    data = b""
    sock.settimeout(quiet)
    try:
        while part := sock.recv(chunk):
            data += part
    except TimeoutError:
        pass
    return data


def test_replay_larger_than_the_socket_buffer_is_lossless_and_meets_live_prices_exactly():
    """A 1,000-tick replay (~100 KB, over the 32 KiB send buffer) with live ticks arriving
    while it drains: every sequence exactly once, in order, none conflated."""
    metrics = Metrics()
    hub = Hub(["A-USDT"], metrics, slow_client_timeout=3600)
    book = PriceBook(limit=1000)
    replayer = Replayer(book, None, metrics)
    broadcaster = gevent.spawn(hub.run_broadcaster)
    ticks = [Tick("A-USDT", f"1.{n:06d}", str(n), 1_700_000_000_000 + n) for n in range(1, 1202)]

    def accept(tick: Tick) -> None:  # what TickIntake._accept does
        hub.offer(book.add(tick))

    for tick in ticks[:1100]:
        accept(tick)
    gevent.sleep(0.05)
    server, client = tcp_pair(4096)
    try:
        conn = Connection(server, "test", hub)
        for tick in ticks[1100:1105]:  # queued for the broadcaster, already in the history
            accept(tick)
        since = {"A-USDT": 105}  # exactly HISTORY_LIMIT (1,000) ticks missed: 106..1105
        hub.attach(conn, ["A-USDT"], replayer.recover(since))
        assert conn.backlog_since is not None  # the replay did not fit: it drains from the backlog
        for tick in ticks[1105:]:  # live prices while the replay is being written
            accept(tick)
            gevent.sleep(0)
        data = b""
        for _ in range(200):
            gevent.sleep(0.005)
            data += read_all(client, quiet=0.001, chunk=8192)
            if data and conn.drained and hub._queue.empty():
                break
        data += read_all(client, quiet=0.05)
        frames = frames_from(data)
        assert frames[0] == {"code": 2, "data": "recovered", "symbol": "A-USDT", "count": 1000}
        seqs = [int(f["seq"]) for f in frames[1:]]
        assert seqs == list(range(106, 1202))
        assert metrics.frames_conflated._value.get() == 0
    finally:
        broadcaster.kill()
        client.close()
        server.close()


def test_a_client_that_does_not_take_its_replay_is_evicted_not_conflated():
    metrics = Metrics()
    hub = Hub(["A-USDT"], metrics, slow_client_timeout=0.2)
    book = PriceBook(limit=1000)
    for n in range(1, 1001):
        book.add(Tick("A-USDT", "1.5", str(n), 1_700_000_000_000))
    server, client = tcp_pair(1024)
    reaper = gevent.spawn(hub.run_reaper, 0.05)
    try:
        conn = Connection(server, "test", hub)
        hub.attach(conn, ["A-USDT"], Replayer(book, None, metrics).recover({"A-USDT": 1}))
        started = time.monotonic()
        while not conn.closed and time.monotonic() - started < 3:
            gevent.sleep(0.05)
        assert conn.closed and "slow client" in conn.close_reason
        assert metrics.clients_evicted.labels(reason="slow")._value.get() == 1
        # Live prices behind an unsent replay are bounded too.
        other_server, other_client = tcp_pair(1024)
        conn2 = Connection(other_server, "test2", hub)
        conn2.replay([b"x" * 100] * 2000)
        for _ in range(REPLAY_LIVE_LIMIT + 1):
            conn2.send(b"y", "A-USDT")
        assert conn2.closed and conn2.close_reason == "slow client: replay backlog full"
        other_server.close()
        other_client.close()
    finally:
        reaper.kill()
        client.close()
        server.close()
