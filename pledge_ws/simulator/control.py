"""The simulator's fault-injection API under ``/_sim/`` (the package docstring has the table):
every body checked, every answer JSON, every bad input a 400 that says what to fix."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, request

from pledge_ws.simulator import injection
from pledge_ws.simulator.exchange import Exchange
from pledge_ws.simulator.model import (
    BULLET_FAIL_MODES,
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

log = logging.getLogger("pledge_ws.simulator")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_response(body: object, status: int = 200) -> Response:
    return Response(_dumps(body), status=status, mimetype="application/json")


def _body() -> dict[str, Any]:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "body must be a JSON object")
    return body


def _number(body: Mapping[str, Any], key: str, low: float, high: float, *, integer: bool) -> Any:
    value = body.get(key)
    kinds = int if integer else int | float
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise BadRequest(400, f"{key} must be {kind} in {low:g}..{high:g}, got {value!r}")
    return value


def _choice(body: Mapping[str, Any], key: str, choices: Iterable[str], default: str) -> str:
    value = body.get(key, default)
    choices = tuple(choices)
    if value not in choices:
        raise BadRequest(400, f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def control_routes(app: Flask, exchange: Exchange) -> None:
    """Register the ``/_sim/`` routes on the simulator's app."""

    @app.get("/_sim/state")
    def state() -> Response:
        return json_response(exchange.state())

    @app.post("/_sim/drop")
    def drop() -> Response:
        mode = _choice(_body(), "mode", DROP_MODES, "close")
        dropped = injection.drop_all(exchange, mode)
        log.info("dropped %d connection(s) (%s)", dropped, mode)
        return json_response({"ok": True, "mode": mode, "dropped": dropped})

    @app.post("/_sim/silent")
    def silent() -> Response:
        seconds = _number(_body(), "seconds", 0, MAX_SILENT_SECONDS, integer=False)
        exchange.faults.silence(seconds)
        log.info("silent for %gs", seconds)
        return json_response({"ok": True, "silent": exchange.faults.is_silent(), "seconds": seconds})

    @app.post("/_sim/fail-bullet")
    def fail_bullet() -> Response:
        body = _body()
        count = _number(body, "count", 0, MAX_FAIL_BULLETS, integer=True)
        mode = _choice(body, "mode", BULLET_FAIL_MODES, "500")
        exchange.faults.fail_bullets(count, mode)
        log.info("next %d bullet(s) fail with %s", count, mode)
        return json_response({"ok": True, "count": count, "mode": mode})

    @app.post("/_sim/malformed")
    def malformed() -> Response:
        body = _body()
        count = _number(body, "count", 0, MAX_MALFORMED, integer=True)
        kinds = body.get("kinds", list(MALFORMED_KINDS))
        if not isinstance(kinds, list) or not kinds or any(k not in MALFORMED_KINDS for k in kinds):
            raise BadRequest(400, f"kinds must be a list drawn from {', '.join(MALFORMED_KINDS)}")
        sent = injection.send_malformed(exchange, count, kinds)
        return json_response({"ok": True, "sent": sent, "kinds": kinds})

    @app.post("/_sim/price")
    def price() -> Response:
        body = _body()
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or symbol not in exchange.symbols:
            raise BadRequest(404, f"unknown symbol: {str(symbol)[:40]}")
        try:
            parse_price(body.get("price"))
        except SimulatorError as exc:
            raise BadRequest(400, str(exc)) from None
        tick = exchange.tick(symbol, body["price"])
        answer = {"symbol": symbol, "price": tick.price, "sequence": tick.sequence}
        return json_response({"ok": True, **answer, "time": tick.time})

    @app.post("/_sim/rate")
    def set_rate() -> Response:
        rate_value = _number(_body(), "rate", 0, MAX_RATE, integer=False)
        exchange.set_rate(rate_value)
        log.info("rate %g ticks/s per symbol", rate_value)
        return json_response({"ok": True, "rate": exchange.rate})

    @app.post("/_sim/ws-down")
    def ws_down() -> Response:
        seconds = _number(_body(), "seconds", 0, MAX_FAULT_SECONDS, integer=False)
        exchange.faults.ws_down(seconds)
        dropped = injection.drop_all(exchange, "reset") if seconds > 0 else 0
        log.info("push servers down for %gs (REST stays up); dropped %d", seconds, dropped)
        return json_response({"ok": True, "seconds": seconds, "dropped": dropped})

    @app.post("/_sim/rest-limit")
    def rest_limit() -> Response:
        ms = _number(_body(), "ms", 0, MAX_LIMIT_MS, integer=True)
        exchange.faults.limit_rest(ms)
        log.info("REST answers 429 for %d ms", ms)
        return json_response({"ok": True, "ms": ms})

    @app.post("/_sim/rest-fail")
    def rest_fail() -> Response:
        body = _body()
        count = _number(body, "count", 0, MAX_FAIL_BULLETS, integer=True)
        mode = _choice(body, "mode", REST_FAIL_MODES, "500")
        exchange.faults.fail_rest(count, mode)
        return json_response({"ok": True, "count": count, "mode": mode})

    @app.post("/_sim/error-frame")
    def error_frame() -> Response:
        body = _body()
        code = _number(body, "code", 0, 999, integer=True)
        seconds = _number({"seconds": body.get("seconds", 0)}, "seconds", 0, MAX_FAULT_SECONDS, integer=False)
        if code not in ERROR_FRAME_CODES:
            raise BadRequest(400, f"code must be one of {', '.join(map(str, ERROR_FRAME_CODES))}")
        exchange.faults.error_on_connect(code, seconds)
        sent = injection.send_error(exchange, code)
        log.info("error %d to %d open connection(s), and to new ones for %gs", code, sent, seconds)
        return json_response({"ok": True, "code": code, "sent": sent, "seconds": seconds})

    @app.post("/_sim/dead-first-server")
    def dead_first_server() -> Response:
        on = _body().get("on", True)
        if not isinstance(on, bool):
            raise BadRequest(400, f"on must be true or false, got {on!r}")
        exchange.faults.dead_first_server = on
        return json_response({"ok": True, "on": on})

    @app.post("/_sim/sequence-reset")
    def sequence_reset() -> Response:
        body = _body()
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or symbol not in exchange.symbols:
            raise BadRequest(404, f"unknown symbol: {str(symbol)[:40]}")
        start = _number({"start": body.get("start", 1)}, "start", 1, MAX_SEQUENCE, integer=True)
        gap_ms = _number({"gap_ms": body.get("gap_ms", SEQUENCE_RESET_GAP_MS)}, "gap_ms", 0, MAX_LIMIT_MS, integer=True)
        exchange.restart_sequence(symbol, start, gap_ms)
        log.info("%s sequence restarts at %d (clock %d ms ahead)", symbol, start, gap_ms)
        return json_response({"ok": True, "symbol": symbol, "start": start, "gap_ms": gap_ms})

    @app.post("/_sim/reset")
    def reset() -> Response:
        _body()
        exchange.faults.reset()
        return json_response({"ok": True})
