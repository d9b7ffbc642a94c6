"""The simulator's HTTP surface: KuCoin's REST endpoints, its WebSocket endpoint, and the
``/_sim/`` control API that injects faults (see the package docstring)."""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Mapping, Sequence

from flask import Flask, Response, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed, Server

from pledge_ws.simulator.bullets import DEAD_ENDPOINT
from pledge_ws.simulator.control import BadRequest, control_routes, json_response
from pledge_ws.simulator.exchange import Exchange
from pledge_ws.simulator.model import (
    DEFAULT_SYMBOLS,
)
from pledge_ws.simulator.peers import Ticker, WsPeer, serve_peer

log = logging.getLogger("pledge_ws.simulator")


def _rest_failure(mode: str, reset_ms: int) -> Response:
    """KuCoin's answers when its REST API refuses: 429 with the reset in ms, 5xx, or bad JSON."""
    if mode == "429":
        response = json_response({"code": "429000", "msg": "Too Many Requests"}, 429)
        response.headers["gw-ratelimit-limit"] = "2000"
        response.headers["gw-ratelimit-remaining"] = "0"
        response.headers["gw-ratelimit-reset"] = str(reset_ms)
        return response
    if mode == "badjson":
        return Response('{"code":"200000","data":{"price":', mimetype="application/json")
    return json_response({"code": f"{mode}000", "msg": "Service Unavailable"}, int(mode))


def create_simulator_app(
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    rate: float = 1.0,
    ping_interval_ms: int = 18000,
    ping_timeout_ms: int = 10000,
    *,
    start_prices: Mapping[str, str] | None = None,
    seed: int | None = None,
    exchange: Exchange | None = None,
    autostart: bool = True,
) -> Flask:
    """The simulator as a Flask app; serve it with gevent's WSGIServer (see :func:`serve`).

    The exchange is at ``app.extensions["pledge_ws.simulator"]`` and the ticker at
    ``app.extensions["pledge_ws.simulator.ticker"]``; ``autostart=False`` leaves the ticker
    stopped for tests that want to drive ticks by hand.
    """
    if exchange is None:
        exchange = Exchange(
            symbols,
            rate=rate,
            ping_interval_ms=ping_interval_ms,
            ping_timeout_ms=ping_timeout_ms,
            start_prices=start_prices,
            rng=random.Random(seed),
        )
    ticker = Ticker(exchange)
    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": 1 << 16}
    app.extensions["pledge_ws.simulator"] = exchange
    app.extensions["pledge_ws.simulator.ticker"] = ticker
    sock = Sock(app)

    @app.errorhandler(BadRequest)
    def _bad_request(exc: BadRequest) -> Response:
        return json_response({"error": str(exc)}, exc.status)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Response:
        return json_response({"error": f"no route {request.method} {request.path}"}, 404)

    @app.errorhandler(405)
    def _not_allowed(_exc: Exception) -> Response:
        return json_response({"error": f"{request.method} is not allowed on {request.path}"}, 405)

    @app.post("/api/v1/bullet-public")
    def bullet() -> Response:
        failure = exchange.faults.take_bullet_failure()
        if failure == "500":
            return json_response({"code": "500000", "msg": "Internal Server Error"}, 500)
        if failure == "badjson":
            return Response('{"code":"200000","data":{"token":', mimetype="application/json")
        return json_response(exchange.bullet_body(request.host))

    @app.get("/api/v1/market/orderbook/level1")
    def level1() -> Response:
        exchange.rest_calls += 1
        failure = exchange.faults.take_rest_failure()
        if failure is not None:
            return _rest_failure(*failure)
        symbol = request.args.get("symbol", "")
        if not symbol:
            return json_response({"code": "400100", "msg": "symbol is required"}, 400)
        return json_response(exchange.level1(symbol))

    @app.before_request
    def _check_token() -> Response | None:
        # Refuse before the upgrade, so a bad or reused token is a plain HTTP 401.
        if request.path == DEAD_ENDPOINT:
            exchange.dead_endpoint_refused += 1
            return json_response({"code": "503", "msg": "this push server is down"}, 503)
        if request.path != "/endpoint":
            return None
        if exchange.faults.is_ws_down():
            return json_response({"code": "503", "msg": "push servers are down"}, 503)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return json_response({"code": "400", "msg": "expected a WebSocket upgrade"}, 400)
        if not exchange.tokens.consume(request.args.get("token", "")):
            return json_response({"code": "401", "msg": "token is missing, unknown or already used"}, 401)
        g.connect_id = request.args.get("connectId") or secrets.token_hex(8)
        return None

    @sock.route("/endpoint")
    def endpoint(ws: Server) -> None:
        peer = WsPeer(ws, exchange, g.connect_id)
        exchange.register(peer)
        log.debug("connection %s open", peer.connect_id)
        try:
            exchange.welcome(peer)
            serve_peer(ws, peer, exchange)
        except ConnectionClosed:
            pass
        finally:
            exchange.unregister(peer)
            peer.finish(request.environ)
            log.debug("connection %s closed", peer.connect_id)

    control_routes(app, exchange)

    if autostart:
        ticker.start()
    return app
