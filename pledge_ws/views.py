"""HTTP routes and the ``/ws`` endpoint (contract sections 2 and 3)."""

from __future__ import annotations

import ipaddress
import time

from flask import Flask, Response, g, jsonify, request, send_from_directory
from flask_sock import Sock
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pledge_ws.protocol import Invalid, normalize_symbols
from pledge_ws.runtime import Runtime
from pledge_ws.session import ClientSession


def _error(status: int, message: str, **extra: object) -> tuple[Response, int]:
    return jsonify({"error": message, **extra}), status


def client_ip(remote_addr: str | None, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    """The peer address, or the nearest untrusted hop in X-Forwarded-For behind a trusted proxy."""
    addr = remote_addr or "unknown"
    if not trusted or not forwarded_for:
        return addr
    networks = [ipaddress.ip_network(item, strict=False) for item in trusted]

    def is_trusted(value: str) -> bool:
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    if not is_trusted(addr):
        return addr
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if not is_trusted(hop):
            return hop
        addr = hop
    return addr


def register_views(app: Flask, sock: Sock, runtime: Runtime) -> None:
    settings = runtime.settings
    metrics = runtime.metrics

    @app.before_request
    def guard_websocket_upgrade() -> tuple[Response, int] | None:
        """Refuse at the HTTP stage what must not become a WebSocket (clear status + body)."""
        if request.path != "/ws":
            return None
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _error(400, "expected a WebSocket upgrade request")
        if not settings.origin_allowed(request.headers.get("Origin")):
            metrics.connections_rejected.labels(reason="origin").inc()
            return _error(403, "origin not allowed", origin=request.headers.get("Origin"))
        if runtime.shutting_down:
            metrics.connections_rejected.labels(reason="shutting_down").inc()
            return _error(503, "server shutting down, try again later")
        if len(runtime.hub.connections) >= settings.max_connections:
            metrics.connections_rejected.labels(reason="max_connections").inc()
            return _error(503, "too many connections, try again later")
        ip = client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), settings.trusted_proxies)
        limit = settings.max_connections_per_ip
        if limit and runtime.clients_per_ip.get(ip, 0) >= limit:
            metrics.connections_rejected.labels(reason="max_connections_per_ip").inc()
            return _error(429, "too many connections from this address, try again later")
        raw = request.args.get("symbols")
        symbols = (settings.primary_symbol,) if raw is None else normalize_symbols(raw, settings.symbols)
        if isinstance(symbols, Invalid):
            metrics.connections_rejected.labels(reason="bad_symbols").inc()
            return _error(400, symbols.reason, symbols=list(settings.symbols))
        # Prices are ~100-byte frames: permessage-deflate would cost ~300 KB of zlib state
        # per connection for nothing, so it is never negotiated.
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        g.ws_symbols = symbols
        g.client_ip = ip
        return None

    @sock.route("/ws")
    def ws_endpoint(ws: object) -> None:
        ip: str = g.client_ip
        runtime.clients_per_ip[ip] = runtime.clients_per_ip.get(ip, 0) + 1
        try:
            ClientSession(ws, runtime.hub, settings, metrics, g.ws_symbols, peer=ip).run()
        finally:
            left = runtime.clients_per_ip.get(ip, 1) - 1
            if left > 0:
                runtime.clients_per_ip[ip] = left
            else:
                runtime.clients_per_ip.pop(ip, None)

    @app.get("/price")
    def price() -> tuple[Response, int] | Response:
        symbol = request.args.get("symbol", settings.primary_symbol).strip().upper()
        if symbol not in settings.symbols:
            return _error(404, f"unknown symbol: {symbol[:40]}", symbols=list(settings.symbols))
        tick = runtime.book.get(symbol)
        if tick is None:
            return _error(503, f"no price known yet for {symbol}", symbol=symbol)
        age_ms = max(0, int(time.time() * 1000) - tick.ts)
        return jsonify(
            {
                "symbol": tick.symbol,
                "price": tick.price,
                "seq": tick.sequence,
                "ts": tick.ts,
                "age_ms": age_ms,
                "stale": not runtime.is_live(),
            }
        )

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        reasons = runtime.not_ready_reasons()
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "feed": {
                "connected": runtime.feed.state.connected,
                "unavailable_symbols": sorted(runtime.feed.state.unavailable),
            },
            "redis": None if runtime.redis is None else {"healthy": runtime.redis.healthy},
            "connections": len(runtime.hub.connections),
        }
        return jsonify(body), 200 if not reasons else 503

    @app.get("/metrics")
    def metrics_view() -> Response:
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/")
    def index() -> Response:
        return send_from_directory(app.static_folder or "static", "index.html")
