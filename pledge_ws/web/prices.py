"""The public HTTP routes (docs/protocol.md, "HTTP"): ``/price``, ``/price/history``, ``/symbols``, and
the page at ``/``."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory

from pledge_ws.core.book import HISTORY_LIMIT
from pledge_ws.worker.runtime import Runtime


def _error(status: int, message: str, **extra: object) -> tuple[Response, int]:
    return jsonify({"error": message, **extra}), status


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | str | None:
    """A bounded integer query parameter, or an error message naming it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        return f"{name} must be an integer from {low} to {high}"
    return int(raw)


def prices_blueprint(runtime: Runtime) -> Blueprint:
    settings = runtime.settings
    bp = Blueprint("prices", __name__)

    def symbol_arg() -> str:
        return request.args.get("symbol", settings.primary_symbol).strip().upper()

    @bp.get("/price")
    def price() -> tuple[Response, int] | Response:
        symbol = symbol_arg()
        if symbol not in settings.symbols:
            return _error(404, f"unknown symbol: {symbol[:40]}", symbols=list(settings.symbols))
        tick = runtime.book.get(symbol)
        if tick is None:
            return _error(503, f"no price known yet for {symbol}", symbol=symbol)
        return jsonify(
            {
                "symbol": tick.symbol,
                "price": tick.price,
                "seq": tick.sequence,
                "ts": tick.ts,
                "age_ms": max(0, int(time.time() * 1000) - tick.ts),
                "stale": not runtime.is_live(),
                "source": tick.source,
            }
        )

    @bp.get("/price/history")
    def price_history() -> tuple[Response, int] | Response:
        symbol = symbol_arg()
        if symbol not in settings.symbols:
            return _error(404, f"unknown symbol: {symbol[:40]}", symbols=list(settings.symbols))
        limit = _int_arg("limit", default=100, low=1, high=HISTORY_LIMIT)
        since = _int_arg("since", default=None, low=0, high=10**14)
        if isinstance(limit, str) or isinstance(since, str):
            return _error(400, limit if isinstance(limit, str) else str(since))
        ticks = runtime.book.history(symbol, limit or 0, since)
        return jsonify({"symbol": symbol, "ticks": [{"price": t.price, "seq": t.sequence, "ts": t.ts} for t in ticks]})

    @bp.get("/symbols")
    def symbols_view() -> Response:
        """What a page needs to build its symbol picker and heartbeat timer."""
        return jsonify(
            {
                "symbols": list(settings.symbols),
                "primary": settings.primary_symbol,
                "heartbeat_timeout": settings.heartbeat_timeout,
                "history_limit": HISTORY_LIMIT,
            }
        )

    @bp.get("/")
    def index() -> Response:
        return send_from_directory(current_app.static_folder or "static", "index.html")

    return bp
