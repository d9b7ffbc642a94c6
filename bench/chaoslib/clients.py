"""The campaign's clients, each a thread with a real WebSocket (websocket-client), recording
every frame it receives for the checker.

Three kinds: ``steady`` readers (connect, read everything, ping, reconnect only when the
server closes), ``reconnecting`` ones (drop their connection at random and come back with
``since=`` the last seq they got of each symbol, as the browser client does), and ``slow``
readers (a tiny receive buffer, one read a second: the server conflates what they miss). Every
client reconnects after a close, with a short backoff, until the campaign ends.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time

import websocket

from .checker import Connection

SYMBOLS = ("PLGR-USDT", "BTC-USDT")


class Client(threading.Thread):
    def __init__(self, name: str, kind: str, urls: list[str], seed: int, stop: threading.Event, t0: float) -> None:
        super().__init__(name=name, daemon=True)
        self.kind, self.urls, self.stop, self.t0 = kind, urls, stop, t0
        self.rng = random.Random(seed)
        self.connections: list[Connection] = []
        self.last: dict[str, int] = {}  # symbol -> last seq received (for since=)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            conn = self._session()
            attempt = 0 if conn is not None and len(conn.frames) > 0 else min(attempt + 1, 5)
            self.stop.wait(self.rng.uniform(0.1, 0.5) * 2**attempt)

    def _url(self) -> tuple[str, dict[str, int] | None]:
        url = self.rng.choice(self.urls) + "?symbols=" + ",".join(SYMBOLS)
        if self.kind == "reconnecting" and self.last:
            since = dict(self.last)
            return url + "&since=" + ",".join(f"{s}:{q}" for s, q in since.items()), since
        return url, None

    def _session(self) -> Connection | None:
        url, since = self._url()
        sockopt = ((socket.SOL_SOCKET, socket.SO_RCVBUF, 2048),) if self.kind == "slow" else ()
        try:
            ws = websocket.create_connection(url, timeout=10, sockopt=sockopt)
        except Exception:
            return None
        conn = Connection(self.name, self.kind, self.now(), None, since)
        self.connections.append(conn)
        ws.settimeout(1.0)
        next_ping = 0.0
        drop_at = self.now() + self.rng.uniform(5, 40) if self.kind == "reconnecting" else float("inf")
        try:
            while not self.stop.is_set() and self.now() < drop_at:
                if self.now() >= next_ping:
                    ws.send("ping")
                    next_ping = self.now() + 5
                try:
                    raw = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if not raw:
                    break
                self._record(conn, raw)
                if self.kind == "slow":
                    time.sleep(1.0)
        except Exception:
            pass
        finally:
            conn.closed_at = self.now()
            with contextlib.suppress(Exception):
                ws.close(timeout=0.2)
        return conn

    def _record(self, conn: Connection, raw: str | bytes) -> None:
        t = self.now()
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        code = msg.get("code")
        if code == 0:
            seq = int(msg["seq"])
            conn.frames.append((t, 0, msg["symbol"], seq, int(msg["ts"]), None))
            self.last[msg["symbol"]] = seq
        elif code == 2:
            status = (msg["data"], int(msg.get("count", 0)))
            conn.frames.append((t, 2, msg["symbol"], -1, 0, status))
            if msg["data"] == "not recovered":
                self.last.pop(msg["symbol"], None)
        elif code == -1:
            conn.frames.append((t, -1, "", -1, 0, msg.get("data")))


def start_clients(
    urls: list[str], counts: dict[str, int], seed: int, t0: float
) -> tuple[list[Client], threading.Event]:
    stop = threading.Event()
    clients = []
    n = 0
    for kind, count in counts.items():
        for _ in range(count):
            clients.append(Client(f"{kind}-{n}", kind, urls, seed * 1000 + n, stop, t0))
            n += 1
    for client in clients:
        client.start()
        time.sleep(0.01)
    return clients, stop
