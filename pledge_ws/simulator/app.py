"""The simulator's HTTP surface: KuCoin's REST endpoints, its WebSocket endpoint, and the
``/_sim/`` control API that injects faults (see the package docstring)."""

from __future__ import annotations

import json
import logging
import math
import random
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flask import Flask, Response, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed, Server

from pledge_ws.simulator import injection
from pledge_ws.simulator.bullets import DEAD_ENDPOINT
from pledge_ws.simulator.exchange import Exchange
from pledge_ws.simulator.model import (
    BULLET_FAIL_MODES,
    DEFAULT_SYMBOLS,
    DROP_MODES,
    ERROR_FRAME_CODES,
    MALFORMED_KINDS,
    MAX_FAIL_BULLETS,
    MAX_FAULT_SECONDS,
    MAX_LIMIT_MS,
    MAX_MALFORMED,
    MAX_RATE,
    MAX_SEQUENCE,
    MAX_SILENT_SECONDS,
    REST_FAIL_MODES,
    SEQUENCE_RESET_GAP_MS,
    SimulatorError,
    _dumps,
    parse_price,
)
from pledge_ws.simulator.peers import Ticker, WsPeer, serve_peer

log = logging.getLogger("pledge_ws.simulator")


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(body: object, status: int = 200) -> Response:
    return Response(_dumps(body), status=status, mimetype="application/json")


def _body() -> dict[str, Any]:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _BadRequest(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest(400, "body must be a JSON object")
    return body


def _number(body: Mapping[str, Any], key: str, low: float, high: float, *, integer: bool) -> Any:
    value = body.get(key)
    kinds = int if integer else int | float
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise _BadRequest(400, f"{key} must be {kind} in {low:g}..{high:g}, got {value!r}")
    return value


def _choice(body: Mapping[str, Any], key: str, choices: Iterable[str], default: str) -> str:
    value = body.get(key, default)
    choices = tuple(choices)
    if value not in choices:
        raise _BadRequest(400, f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _rest_failure(mode: str, reset_ms: int) -> Response:
    """KuCoin's answers when its REST API refuses: 429 with the reset in ms, 5xx, or bad JSON."""
    if mode == "429":
        response = _json({"code": "429000", "msg": "Too Many Requests"}, 429)
        response.headers["gw-ratelimit-limit"] = "2000"
        response.headers["gw-ratelimit-remaining"] = "0"
        response.headers["gw-ratelimit-reset"] = str(reset_ms)
        return response
    if mode == "badjson":
        return Response('{"code":"200000","data":{"price":', mimetype="application/json")
    return _json({"code": f"{mode}000", "msg": "Service Unavailable"}, int(mode))


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

    @app.errorhandler(_BadRequest)
    def _bad_request(exc: _BadRequest) -> Response:
        return _json({"error": str(exc)}, exc.status)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Response:
        return _json({"error": f"no route {request.method} {request.path}"}, 404)

    @app.errorhandler(405)
    def _not_allowed(_exc: Exception) -> Response:
        return _json({"error": f"{request.method} is not allowed on {request.path}"}, 405)

    @app.post("/api/v1/bullet-public")
    def bullet() -> Response:
        failure = exchange.take_bullet_failure()
        if failure == "500":
            return _json({"code": "500000", "msg": "Internal Server Error"}, 500)
        if failure == "badjson":
            return Response('{"code":"200000","data":{"token":', mimetype="application/json")
        return _json(exchange.bullet_body(request.host))

    @app.get("/api/v1/market/orderbook/level1")
    def level1() -> Response:
        exchange.rest_calls += 1
        failure = exchange.faults.take_rest_failure()
        if failure is not None:
            return _rest_failure(*failure)
        symbol = request.args.get("symbol", "")
        if not symbol:
            return _json({"code": "400100", "msg": "symbol is required"}, 400)
        return _json(exchange.level1(symbol))

    @app.before_request
    def _check_token() -> Response | None:
        # Refuse before the upgrade, so a bad or reused token is a plain HTTP 401.
        if request.path == DEAD_ENDPOINT:
            exchange.dead_endpoint_refused += 1
            return _json({"code": "503", "msg": "this push server is down"}, 503)
        if request.path != "/endpoint":
            return None
        if exchange.faults.is_ws_down():
            return _json({"code": "503", "msg": "push servers are down"}, 503)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _json({"code": "400", "msg": "expected a WebSocket upgrade"}, 400)
        if not exchange.consume_token(request.args.get("token", "")):
            return _json({"code": "401", "msg": "token is missing, unknown or already used"}, 401)
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

    @app.get("/_sim/state")
    def state() -> Response:
        return _json(exchange.state())

    @app.post("/_sim/drop")
    def drop() -> Response:
        mode = _choice(_body(), "mode", DROP_MODES, "close")
        dropped = injection.drop_all(exchange, mode)
        log.info("dropped %d connection(s) (%s)", dropped, mode)
        return _json({"ok": True, "mode": mode, "dropped": dropped})

    @app.post("/_sim/silent")
    def silent() -> Response:
        seconds = _number(_body(), "seconds", 0, MAX_SILENT_SECONDS, integer=False)
        exchange.silence(seconds)
        log.info("silent for %gs", seconds)
        return _json({"ok": True, "silent": exchange.is_silent(), "seconds": seconds})

    @app.post("/_sim/fail-bullet")
    def fail_bullet() -> Response:
        body = _body()
        count = _number(body, "count", 0, MAX_FAIL_BULLETS, integer=True)
        mode = _choice(body, "mode", BULLET_FAIL_MODES, "500")
        exchange.fail_bullets(count, mode)
        log.info("next %d bullet(s) fail with %s", count, mode)
        return _json({"ok": True, "count": count, "mode": mode})

    @app.post("/_sim/malformed")
    def malformed() -> Response:
        body = _body()
        count = _number(body, "count", 0, MAX_MALFORMED, integer=True)
        kinds = body.get("kinds", list(MALFORMED_KINDS))
        if not isinstance(kinds, list) or not kinds or any(k not in MALFORMED_KINDS for k in kinds):
            raise _BadRequest(400, f"kinds must be a list drawn from {', '.join(MALFORMED_KINDS)}")
        sent = injection.send_malformed(exchange, count, kinds)
        return _json({"ok": True, "sent": sent, "kinds": kinds})

    @app.post("/_sim/price")
    def price() -> Response:
        body = _body()
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or symbol not in exchange.symbols:
            raise _BadRequest(404, f"unknown symbol: {str(symbol)[:40]}")
        try:
            parse_price(body.get("price"))
        except SimulatorError as exc:
            raise _BadRequest(400, str(exc)) from None
        tick = exchange.tick(symbol, body["price"])
        answer = {"symbol": symbol, "price": tick.price, "sequence": tick.sequence}
        return _json({"ok": True, **answer, "time": tick.time})

    @app.post("/_sim/rate")
    def set_rate() -> Response:
        rate_value = _number(_body(), "rate", 0, MAX_RATE, integer=False)
        exchange.set_rate(rate_value)
        log.info("rate %g ticks/s per symbol", rate_value)
        return _json({"ok": True, "rate": exchange.rate})

    @app.post("/_sim/ws-down")
    def ws_down() -> Response:
        seconds = _number(_body(), "seconds", 0, MAX_FAULT_SECONDS, integer=False)
        exchange.faults.ws_down(seconds)
        dropped = injection.drop_all(exchange, "reset") if seconds > 0 else 0
        log.info("push servers down for %gs (REST stays up); dropped %d", seconds, dropped)
        return _json({"ok": True, "seconds": seconds, "dropped": dropped})

    @app.post("/_sim/rest-limit")
    def rest_limit() -> Response:
        ms = _number(_body(), "ms", 0, MAX_LIMIT_MS, integer=True)
        exchange.faults.limit_rest(ms)
        log.info("REST answers 429 for %d ms", ms)
        return _json({"ok": True, "ms": ms})

    @app.post("/_sim/rest-fail")
    def rest_fail() -> Response:
        body = _body()
        count = _number(body, "count", 0, MAX_FAIL_BULLETS, integer=True)
        mode = _choice(body, "mode", REST_FAIL_MODES, "500")
        exchange.faults.fail_rest(count, mode)
        return _json({"ok": True, "count": count, "mode": mode})

    @app.post("/_sim/error-frame")
    def error_frame() -> Response:
        body = _body()
        code = _number(body, "code", 0, 999, integer=True)
        seconds = _number({"seconds": body.get("seconds", 0)}, "seconds", 0, MAX_FAULT_SECONDS, integer=False)
        if code not in ERROR_FRAME_CODES:
            raise _BadRequest(400, f"code must be one of {', '.join(map(str, ERROR_FRAME_CODES))}")
        exchange.faults.error_on_connect(code, seconds)
        sent = injection.send_error(exchange, code)
        log.info("error %d to %d open connection(s), and to new ones for %gs", code, sent, seconds)
        return _json({"ok": True, "code": code, "sent": sent, "seconds": seconds})

    @app.post("/_sim/dead-first-server")
    def dead_first_server() -> Response:
        on = _body().get("on", True)
        if not isinstance(on, bool):
            raise _BadRequest(400, f"on must be true or false, got {on!r}")
        exchange.faults.dead_first_server = on
        return _json({"ok": True, "on": on})

    @app.post("/_sim/sequence-reset")
    def sequence_reset() -> Response:
        body = _body()
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or symbol not in exchange.symbols:
            raise _BadRequest(404, f"unknown symbol: {str(symbol)[:40]}")
        start = _number({"start": body.get("start", 1)}, "start", 1, MAX_SEQUENCE, integer=True)
        gap_ms = _number({"gap_ms": body.get("gap_ms", SEQUENCE_RESET_GAP_MS)}, "gap_ms", 0, MAX_LIMIT_MS, integer=True)
        exchange.restart_sequence(symbol, start, gap_ms)
        log.info("%s sequence restarts at %d (clock %d ms ahead)", symbol, start, gap_ms)
        return _json({"ok": True, "symbol": symbol, "start": start, "gap_ms": gap_ms})

    @app.post("/_sim/reset")
    def reset() -> Response:
        _body()
        exchange.reset_faults()
        return _json({"ok": True})

    if autostart:
        ticker.start()
    return app
