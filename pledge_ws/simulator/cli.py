"""``python -m pledge_ws.simulator``: serve the simulator until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence

import gevent
import gevent.event
from flask import Flask
from gevent.pywsgi import WSGIServer

from pledge_ws.simulator import injection
from pledge_ws.simulator.app import create_simulator_app
from pledge_ws.simulator.exchange import Exchange
from pledge_ws.simulator.model import (
    CLOSE_GRACE_SECONDS,
    DEFAULT_SYMBOLS,
    LOG_LEVELS,
    SimulatorError,
    parse_start_prices,
)
from pledge_ws.simulator.peers import Ticker


def serve(app: Flask, host: str = "127.0.0.1", port: int = 9000) -> WSGIServer:
    """Bind and start serving ``app`` in this process's gevent hub; returns the server."""
    server = WSGIServer((host, port), app, log=None)
    server.start()
    return server


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pledge-ws-simulator",
        description="A KuCoin-compatible exchange on loopback, with fault injection under /_sim/.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS))
    parser.add_argument("--rate", type=float, default=1.0, help="ticks per second per symbol")
    parser.add_argument("--ping-interval-ms", type=int, default=18000)
    parser.add_argument("--ping-timeout-ms", type=int, default=10000)
    parser.add_argument("--start-price", default="", help="PLGR-USDT=0.002700,BTC-USDT=67000.1")
    parser.add_argument("--seed", type=int, default=None, help="make the random walk repeatable")
    parser.add_argument("--log-level", type=str.upper, default="INFO", choices=LOG_LEVELS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT; print one ``simulator listening on ...`` line when ready."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        app = create_simulator_app(
            [s.strip() for s in args.symbols.split(",") if s.strip()],
            args.rate,
            args.ping_interval_ms,
            args.ping_timeout_ms,
            start_prices=parse_start_prices(args.start_price),
            seed=args.seed,
            autostart=False,
        )
    except SimulatorError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    try:
        server = serve(app, args.host, args.port)
    except OSError as exc:
        print(f"simulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    exchange: Exchange = app.extensions["pledge_ws.simulator"]
    ticker: Ticker = app.extensions["pledge_ws.simulator.ticker"]
    ticker.start()
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"simulator listening on http://{host}:{server.server_port}", flush=True)
    stop.wait()
    ticker.stop()
    server.close()  # no new connections while the open ones say goodbye
    injection.drop_all(exchange, "close")
    deadline = time.monotonic() + CLOSE_GRACE_SECONDS + 1
    while exchange.connections and time.monotonic() < deadline:
        gevent.sleep(0.02)
    server.stop(timeout=0)
    return 0
