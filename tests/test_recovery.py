"""Recovery's pure core (since parsing, the gap proof) and the hub's lossless replay seam.

The hub tests use a real socket pair (no mocks): a reader that reads slowly or not at all.
"""

from __future__ import annotations

import json
import socket
import time

import gevent
import pytest

from pledge_ws.connection import REPLAY_LIVE_LIMIT, Connection
from pledge_ws.history import LocalHistory
from pledge_ws.hub import Hub
from pledge_ws.metrics import Metrics
from pledge_ws.recoverer import Recoverer
from pledge_ws.recovery import Entry, NotRecovered, Recovered, decide, merge, parse_since, plan
from pledge_ws.ticks import Tick

SYMBOLS = ("A-USDT", "B-USDT")


def chain(orders: list[int], first_prev: int | None = None) -> list[Entry]:
    entries, prev = [], first_prev
    for order in orders:
        entries.append(Entry(order, prev, b"f%d" % order))
        prev = order
    return entries


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A-USDT:5", {"A-USDT": 5}),
        ("a-usdt:5,B-USDT:0007", {"A-USDT": 5, "B-USDT": 7}),
        (" A-USDT:5 , B-USDT:6 ", {"A-USDT": 5, "B-USDT": 6}),
    ],
)
def test_parse_since_accepts(raw, expected):
    assert parse_since(raw, SYMBOLS) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "SYMBOL:SEQ"),
        ("A-USDT", "malformed item"),
        ("A-USDT:", "malformed item"),
        ("A-USDT:-1", "malformed item"),
        ("A-USDT:1.5", "malformed item"),
        ("A-USDT:1,", "SYMBOL:SEQ"),
        ("A-USDT:1:2", "malformed item"),
        ("C-USDT:1", "C-USDT is not in symbols"),
        ("A-USDT:1,A-USDT:2", "given twice"),
        ("A-USDT:" + "9" * 31, "malformed item"),
    ],
)
def test_parse_since_names_the_problem(raw, problem):
    error = parse_since(raw, SYMBOLS)
    assert isinstance(error, str) and problem in error


def test_decide_needs_an_unbroken_chain_from_the_position():
    kept = chain([10, 12, 15, 16], first_prev=9)
    assert decide(10, kept, 100) == Recovered(tuple(kept[1:]), 16)  # anchored: 10 itself is kept
    assert decide(9, kept, 100) == Recovered(tuple(kept), 16)  # 9 was trimmed, but 10.prev proves it
    assert decide(16, kept[3:], 100) == Recovered((), 16)  # nothing missed
    assert decide(11, kept[1:], 100) == NotRecovered("gap")  # 11 is no tick this history knows
    assert decide(8, kept, 100) == NotRecovered("gap")  # too old: 10's predecessor was 9
    assert decide(17, [], 100) == NotRecovered("unknown")  # newer than anything kept
    holed = [kept[0], kept[1], Entry(15, 13, b"x"), kept[3]]  # 13 was lost before 15 was kept
    assert decide(10, holed, 100) == NotRecovered("gap")
    assert decide(15, holed[2:], 100) == Recovered((kept[3],), 16)  # after the hole: fine
    unknown_prev = [kept[0], Entry(12, None, b"x")]
    assert decide(10, unknown_prev, 100) == NotRecovered("gap")
    assert decide(9, kept, 3) == NotRecovered("too_many")


def test_merge_continues_redis_with_newer_local_entries():
    remote = chain([1, 2, 3], first_prev=0)
    local = chain([2, 3, 4, 5], first_prev=1)
    merged = merge(remote, local)
    assert [e.order for e in merged] == [1, 2, 3, 4, 5]
    assert decide(1, merged, 10) == Recovered(tuple(merged[1:]), 5)
    assert merge([], local) == local
    # Redis lost 3 in a failover and the publisher appended 4 (prev 3): the proof fails.
    assert decide(1, merge([*chain([1, 2], 0), Entry(4, 3, b"4")], []), 10) == NotRecovered("gap")


def test_plan_lays_out_status_then_prices_per_symbol():
    recovery = plan({"A-USDT": 1, "B-USDT": 50}, {"A-USDT": chain([1, 2, 3], 0), "B-USDT": chain([60], 55)}, 10)
    frames = [json.loads(f[2:]) if f.startswith(b"\x81") else f for f in recovery.frames]
    assert frames == [
        {"code": 2, "data": "recovered", "symbol": "A-USDT", "count": 2},
        b"f2",
        b"f3",
        {"code": 2, "data": "not recovered", "symbol": "B-USDT"},
    ]
    assert recovery.floors == {"A-USDT": 3}


def test_local_history_breaks_the_chain_at_a_gap_and_trims_to_its_limit():
    history = LocalHistory(limit=5)
    tick = lambda n: Tick("A-USDT", "1.0", str(n), 1_700_000_000_000)  # noqa: E731
    for n in range(1, 4):
        history.append(tick(n))
    history.mark_gap(["A-USDT"])
    for n in range(7, 20):
        history.append(tick(n))
    kept = history.since("A-USDT", 0)
    assert [e.order for e in kept] == [15, 16, 17, 18, 19]
    assert decide(14, kept, 5).floor == 19  # exactly `limit` ticks missed: still recoverable
    assert decide(13, history.since("A-USDT", 13), 5) == NotRecovered("gap")
    history2 = LocalHistory(limit=100)
    for n in (1, 2, 3):
        history2.append(tick(n))
    history2.mark_gap(["A-USDT"])
    history2.append(tick(7))
    assert history2.prev_of("A-USDT", 7) is None and history2.prev_of("A-USDT", 3) == 2
    assert decide(2, history2.since("A-USDT", 2), 100) == NotRecovered("gap")


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
    history = LocalHistory(limit=1000)
    recoverer = Recoverer(history, None, metrics)
    broadcaster = gevent.spawn(hub.run_broadcaster)
    ticks = [Tick("A-USDT", f"1.{n:06d}", str(n), 1_700_000_000_000 + n) for n in range(1, 1202)]

    def accept(tick: Tick) -> None:  # what Runtime._accept does
        history.append(tick)
        hub.offer(tick)

    for tick in ticks[:1100]:
        accept(tick)
    gevent.sleep(0.05)
    server, client = tcp_pair(4096)
    try:
        conn = Connection(server, "test", hub)
        for tick in ticks[1100:1105]:  # queued for the broadcaster, already in the history
            accept(tick)
        since = {"A-USDT": 105}  # exactly HISTORY_LIMIT (1,000) ticks missed: 106..1105
        hub.attach(conn, ["A-USDT"], recoverer.plan(since, recoverer.fetch(since)))
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
    history = LocalHistory(limit=1000)
    for n in range(1, 1001):
        history.append(Tick("A-USDT", "1.5", str(n), 1_700_000_000_000))
    server, client = tcp_pair(1024)
    reaper = gevent.spawn(hub.run_reaper, 0.05)
    try:
        conn = Connection(server, "test", hub)
        recoverer = Recoverer(history, None, metrics)
        hub.attach(conn, ["A-USDT"], recoverer.plan({"A-USDT": 1}, {}))
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
