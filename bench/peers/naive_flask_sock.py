"""Peer "naive-flask-sock": Flask + flask-sock under gunicorn's gevent worker.

This is the "naive loop" the fan-out issue names, written the way a careful
developer would write it on a first try: one greenlet reads the exchange, one
broadcaster greenlet sends each new frame to every client in turn with a plain
blocking ``ws.send(frame)``. The frame is encoded once per tick. What it lacks
on purpose is any isolation between clients: a client whose socket stops
draining blocks the loop for everyone behind it.

Run:  KUCOIN_API_URL=http://127.0.0.1:9000 gunicorn -k gevent -w 1 \
      --worker-connections 20000 -b 127.0.0.1:8001 \
      --chdir bench/peers naive_flask_sock:app
"""

from __future__ import annotations

import json
import logging
from typing import Any

import gevent
import websocket
from flask import Flask
from flask_sock import Sock
from gevent.queue import Queue
from peer_common import HEARTBEAT, PINGS, PONG, SYMBOL, TIMEOUT_FRAME, bullet

log = logging.getLogger("naive")
app = Flask(__name__)
sock = Sock(app)
clients: set[Any] = set()
ticks: Queue = Queue()
latest: str | None = None


def _pinger(conn: websocket.WebSocket, interval: float) -> None:
    """KuCoin drops a client that does not ping within pingInterval."""
    n = 0
    while True:
        gevent.sleep(interval)
        n += 1
        conn.send(json.dumps({"id": f"p{n}", "type": "ping"}))


def feed() -> None:
    """Read the exchange forever (reconnecting), queue one encoded frame per tick."""
    topic = f"/market/ticker:{SYMBOL}"
    while True:
        pinger = None
        try:
            url, interval = bullet("naive")
            conn = websocket.create_connection(url, timeout=30)
            conn.send(json.dumps({"id": "sub1", "type": "subscribe", "topic": topic, "response": True}))
            pinger = gevent.spawn(_pinger, conn, interval)
            while True:
                msg = json.loads(conn.recv())
                if msg.get("type") != "message" or msg.get("topic") != topic:
                    continue
                d = msg["data"]
                frame = json.dumps(
                    {"code": 0, "data": d["price"], "symbol": SYMBOL, "seq": d["sequence"], "ts": d["time"]},
                    separators=(",", ":"),
                )
                ticks.put(frame)
        except Exception as exc:  # any feed failure means reconnect
            log.warning("feed: %r; reconnecting", exc)
            gevent.sleep(1)
        finally:
            if pinger is not None:
                pinger.kill()


def broadcaster() -> None:
    """The naive loop: every frame, every client, one blocking send at a time.

    The snapshot is set here, not in the feed, so a client that joins while
    frames are still queued never sees an older frame after its snapshot.
    """
    global latest
    while True:
        frame = ticks.get()
        latest = frame
        for ws in list(clients):
            try:
                ws.send(frame)
            except Exception:  # a dead client just leaves the set
                clients.discard(ws)


@sock.route("/ws")
def ws_route(ws: Any) -> None:
    """Snapshot on connect, then answer pings until silence or close."""
    if latest is not None:
        ws.send(latest)
    clients.add(ws)
    try:
        while True:
            msg = ws.receive(timeout=HEARTBEAT)
            if msg is None:
                ws.send(TIMEOUT_FRAME)
                return
            if isinstance(msg, str) and msg.strip() in PINGS:
                ws.send(PONG)
    except Exception:  # ConnectionClosed and friends end the handler
        return
    finally:
        clients.discard(ws)


gevent.spawn(feed)
gevent.spawn(broadcaster)
