"""CPU per /ws upgrade, in-process: where the microseconds of one upgrade go, without sockets
to a real client or a load generator's noise.

    .venv/bin/python bench/upgrade_cost.py [--profile]

Each iteration does what a gunicorn gevent worker does for one connection after accept:
gunicorn's request parser (the C one, as gunicorn.conf.py sets) over the bytes loadgen sends,
gunicorn's WSGI environ, then the Flask app: the guard, the handshake, the 101, the session's
attach (snapshot frame) and its teardown. The client half of a socketpair has shut its
sending side before the session reads, so each session ends at its first recv (EOF). A plain
``GET /healthz`` through the same path is the reference for what Flask and gunicorn cost
around any request.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402  (patched)

from gunicorn.config import Config  # noqa: E402
from gunicorn.http.parser import RequestParser  # noqa: E402
from gunicorn.http.wsgi import create as create_environ  # noqa: E402

from pledge_ws.core.ticks import Tick  # noqa: E402
from pledge_ws.web.factory import create_app, runtime_of  # noqa: E402

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"User-Agent: pledge-ws-loadgen\r\n\r\n"
)
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: pledge-ws-loadgen\r\n\r\n"


def make_cfg() -> Config:
    cfg = Config()
    cfg.set("http_parser", "fast")
    return cfg


def one(app, cfg: Config, raw: bytes, upgrade: bool) -> None:
    server, client = socket.socketpair()
    try:
        if upgrade:
            client.shutdown(socket.SHUT_WR)
        req = next(RequestParser(cfg, iter([raw]), ("127.0.0.1", 40000)))
        _resp, environ = create_environ(req, server, ("127.0.0.1", 40000), ("127.0.0.1", 8000), cfg)
        environ["gunicorn.socket"] = server
        body = app(environ, lambda status, headers, exc_info=None: None)
        if hasattr(body, "close"):
            body.close()
    except StopIteration:
        pass  # the upgrade's "taken over" answer
    finally:
        server.close()
        client.close()


def measure(app, cfg: Config, raw: bytes, upgrade: bool, n: int) -> float:
    for _ in range(200):
        one(app, cfg, raw, upgrade)
    t0 = time.process_time()
    for _ in range(n):
        one(app, cfg, raw, upgrade)
    return (time.process_time() - t0) / n * 1e6


def socketpair_only(n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        a, b = socket.socketpair()
        a.close()
        b.close()
    return (time.process_time() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--profile", action="store_true", help="cProfile the upgrades, top functions by own time")
    args = ap.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    app = create_app(env={"KUCOIN_API_URL": "http://127.0.0.1:9", "LOG_LEVEL": "WARNING", "MAX_CONNECTIONS": "100000"})
    runtime = runtime_of(app)
    tick = Tick(symbol="PLGR-USDT", price="0.0071", sequence="1", ts=1)
    runtime.book.update(tick)
    runtime.hub.seed(tick)
    cfg = make_cfg()
    pair = socketpair_only(args.n)
    upgrade = measure(app, cfg, UPGRADE, True, args.n)
    healthz = measure(app, cfg, HEALTHZ, False, args.n)
    print(f"socketpair + close (subtracted below): {pair:.1f} us")
    print(f"/ws upgrade (parse, environ, Flask, handshake, 101, session attach + end): {upgrade - pair:.1f} us")
    print(f"GET /healthz through the same path: {healthz - pair:.1f} us")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.n):
            one(app, cfg, UPGRADE, True)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
