"""Peer "websockets": the `websockets` library (asyncio API) with broadcast().

The idiomatic asyncio answer to fan-out: ``websockets.broadcast()`` writes the
already-encoded frame into each connection's transport without awaiting, so a
slow client never blocks the others (its buffer grows instead, until the
library's keepalive ping times it out).

Run:  KUCOIN_API_URL=http://127.0.0.1:9000 python bench/peers/websockets_broadcast.py --port 8002
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from typing import Any

from peer_common import HEARTBEAT, PINGS, PONG, SYMBOL, TIMEOUT_FRAME, bullet
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("websockets-peer")
clients: set[ServerConnection] = set()
latest: str | None = None


async def _pinger(ex: Any, interval: float) -> None:
    """KuCoin drops a client that does not ping within pingInterval."""
    n = 0
    while True:
        await asyncio.sleep(interval)
        n += 1
        await ex.send(json.dumps({"id": f"p{n}", "type": "ping"}))


async def feed() -> None:
    """Read the exchange forever (reconnecting); encode each tick once, broadcast it."""
    global latest
    topic = f"/market/ticker:{SYMBOL}"
    while True:
        try:
            url, interval = await asyncio.to_thread(bullet, "wsp")
            async with connect(url, ping_interval=None, compression=None) as ex:
                await ex.send(json.dumps({"id": "sub1", "type": "subscribe", "topic": topic, "response": True}))
                pinger = asyncio.create_task(_pinger(ex, interval))
                try:
                    async for raw in ex:
                        msg = json.loads(raw)
                        if msg.get("type") != "message" or msg.get("topic") != topic:
                            continue
                        d = msg["data"]
                        latest = json.dumps(
                            {"code": 0, "data": d["price"], "symbol": SYMBOL, "seq": d["sequence"], "ts": d["time"]},
                            separators=(",", ":"),
                        )
                        broadcast(clients, latest)
                finally:
                    pinger.cancel()
        except Exception as exc:  # any feed failure means reconnect
            log.warning("feed: %r; reconnecting", exc)
            await asyncio.sleep(1)


async def handler(ws: ServerConnection) -> None:
    """Snapshot on connect, then answer pings until silence or close."""
    if latest is not None:
        await ws.send(latest)
    clients.add(ws)
    try:
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT):
                    msg = await ws.recv()
            except TimeoutError:
                await ws.send(TIMEOUT_FRAME)
                return
            if isinstance(msg, str) and msg.strip() in PINGS:
                await ws.send(PONG)
    except ConnectionClosed:
        pass
    finally:
        clients.discard(ws)


def only_ws(conn: ServerConnection, request: Any) -> Any:
    """Serve /ws only, like the real service."""
    if request.path.split("?", 1)[0] != "/ws":
        return conn.respond(404, "not found\n")
    return None


async def main(port: int) -> None:
    """Serve until killed; the feed runs beside the server."""
    async with serve(handler, "127.0.0.1", port, process_request=only_ws, compression=None, backlog=2048):
        await feed()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8002")))
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("websockets").setLevel(logging.WARNING)  # no per-connection log lines
    asyncio.run(main(ap.parse_args().port))
