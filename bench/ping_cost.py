"""CPU per ping frame: wsproto's general parser vs the session's fast path (pure, in-process).

    .venv/bin/python bench/ping_cost.py

At 10,000 clients pinging every 5 s a worker handles 2,000 pings/s; this prints the parse
and classify cost of one, not the recv/send syscalls around it (those are the same on both paths).
"""

from __future__ import annotations

import os
import timeit

from wsproto import ConnectionType
from wsproto.connection import Connection

from pledge_ws.clients.session import _parser_idle
from pledge_ws.core import protocol

MASK = os.urandom(4)
FRAME = b"\x81\x84" + MASK + bytes(b ^ MASK[i] for i, b in enumerate(b"ping"))
CONFIGURED = ("PLGR-USDT",)


def general(conn: Connection) -> None:
    conn.receive_data(FRAME)
    for event in conn.events():
        protocol.parse_client_message(event.data, CONFIGURED)  # type: ignore[attr-defined]


def fast(conn: Connection) -> None:
    if protocol.is_ping_frame(FRAME) and _parser_idle(conn):
        protocol.parse_client_message("ping", CONFIGURED)


def main() -> None:
    n = 200_000
    for name, fn in (("wsproto general path", general), ("fast path", fast)):
        conn = Connection(ConnectionType.SERVER)
        best = min(timeit.repeat(lambda fn=fn, conn=conn: fn(conn), number=n, repeat=5)) / n
        print(f"{name:22s} {best * 1e6:6.2f} us/ping  -> {best * 2000 * 100:5.2f} % of a core at 2,000 pings/s")


if __name__ == "__main__":
    main()
