"""HTTP routes and the ``/ws`` endpoint (contract sections 2 and 3)."""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass

from flask import Flask, Response, g, jsonify, request, send_from_directory
from flask_sock import Sock
from prometheus_client import CONTENT_TYPE_LATEST

from pledge_ws.protocol import Invalid, normalize_symbols
from pledge_ws.recovery import parse_since
from pledge_ws.runtime import Runtime
from pledge_ws.session import ClientSession
from pledge_ws.store import HISTORY_LIMIT


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


WS_UPGRADE = "pledge_ws.upgrade"  # environ key of the checked upgrade (the guard -> the view)


@dataclass(frozen=True, slots=True)
class WsUpgrade:
    """What the guard established for one ``/ws`` upgrade, for the view and the teardown."""

    symbols: tuple[str, ...]
    since: dict[str, int] | None
    ip: str


# With METRICS_PORT set, the only paths its listener answers; the public port loses /metrics.
METRICS_PORT_PATHS = frozenset({"/metrics", "/readyz", "/healthz"})


def on_metrics_port(server_port: str | None, metrics_port: int | None) -> bool:
    """Whether a request came in on the METRICS_PORT listener (gunicorn's SERVER_PORT is the
    listening socket's port, not the Host header's, so a client cannot claim it)."""
    return metrics_port is not None and server_port == str(metrics_port)


def register_views(app: Flask, sock: Sock, runtime: Runtime) -> None:
    settings = runtime.settings
    metrics = runtime.metrics

    @app.before_request
    def split_public_and_metrics_ports() -> tuple[Response, int] | None:
        """METRICS_PORT keeps host names, pids and the leader's identity off the public port."""
        if settings.metrics_port is None:
            return None
        g.metrics_port = on_metrics_port(request.environ.get("SERVER_PORT"), settings.metrics_port)
        if g.metrics_port and request.path not in METRICS_PORT_PATHS:
            return _error(404, "not found: this port serves only /metrics, /readyz and /healthz")
        if not g.metrics_port and request.path == "/metrics":
            return _error(404, "not found")
        return None

    @app.before_request
    def guard_websocket_upgrade() -> tuple[Response, int] | None:
        """Refuse at the HTTP stage what must not become a WebSocket (clear status + body).

        Reads the WSGI environ directly (one context lookup, not one per header) and leaves
        what the view needs in one :class:`WsUpgrade`: a storm is bounded by each upgrade's CPU.
        """
        req = request._get_current_object()  # type: ignore[attr-defined]
        if req.path != "/ws":
            return None
        environ = req.environ
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return _error(400, "expected a WebSocket upgrade request")
        origin = environ.get("HTTP_ORIGIN")
        if not settings.origin_allowed(origin):
            metrics.connections_rejected.labels(reason="origin").inc()
            return _error(403, "origin not allowed", origin=origin)
        if runtime.shutting_down:
            metrics.connections_rejected.labels(reason="shutting_down").inc()
            return _error(503, "server shutting down, try again later")
        if runtime.ws_slots >= settings.max_connections:
            metrics.connections_rejected.labels(reason="max_connections").inc()
            return _error(503, "too many connections, try again later")
        ip = client_ip(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"), settings.trusted_proxies)
        limit = settings.max_connections_per_ip
        if limit and runtime.clients_per_ip.get(ip, 0) >= limit:
            metrics.connections_rejected.labels(reason="max_connections_per_ip").inc()
            return _error(429, "too many connections from this address, try again later")
        symbols: tuple[str, ...] | Invalid = (settings.primary_symbol,)
        since: dict[str, int] | str | None = None
        if environ.get("QUERY_STRING"):
            args = req.args
            raw = args.get("symbols")
            if raw is not None:
                symbols = normalize_symbols(raw, settings.symbols)
            if isinstance(symbols, Invalid):
                metrics.connections_rejected.labels(reason="bad_symbols").inc()
                return _error(400, symbols.reason, symbols=list(settings.symbols))
            since = parse_since(args["since"], symbols) if "since" in args else None
            if isinstance(since, str):
                metrics.connections_rejected.labels(reason="bad_since").inc()
                return _error(400, since, since=args["since"][:200], symbols=list(symbols))
        assert not isinstance(symbols, Invalid) and not isinstance(since, str)
        # Prices are ~100-byte frames: permessage-deflate would cost ~300 KB of zlib state
        # per connection for nothing, so it is never negotiated.
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        # Counted from here, not from the end of the handshake: concurrent upgrades from one
        # address cannot all slip under the limits. Released in release_ws_slot below.
        runtime.take_ws_slot(ip)
        environ[WS_UPGRADE] = WsUpgrade(symbols, since, ip)
        return None

    @app.teardown_request
    def release_ws_slot(_exc: BaseException | None) -> None:
        upgrade = request.environ.pop(WS_UPGRADE, None)
        if upgrade is not None:
            runtime.release_ws_slot(upgrade.ip)

    @sock.route("/ws")
    def ws_endpoint(ws: object) -> None:
        upgrade: WsUpgrade = request.environ[WS_UPGRADE]
        ClientSession(
            ws,
            runtime.hub,
            settings,
            metrics,
            upgrade.symbols,
            peer=upgrade.ip,
            since=upgrade.since,
            recoverer=runtime.recoverer,
        ).run()

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
                "source": tick.source,
            }
        )

    @app.get("/price/history")
    def price_history() -> tuple[Response, int] | Response:
        symbol = request.args.get("symbol", settings.primary_symbol).strip().upper()
        if symbol not in settings.symbols:
            return _error(404, f"unknown symbol: {symbol[:40]}", symbols=list(settings.symbols))
        limit = _int_arg("limit", default=100, low=1, high=HISTORY_LIMIT)
        since = _int_arg("since", default=None, low=0, high=10**14)
        if isinstance(limit, str) or isinstance(since, str):
            return _error(400, limit if isinstance(limit, str) else str(since))
        ticks = runtime.book.history(symbol, limit, since)
        return jsonify({"symbol": symbol, "ticks": [{"price": t.price, "seq": t.sequence, "ts": t.ts} for t in ticks]})

    @app.get("/symbols")
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

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        reasons = runtime.not_ready_reasons()
        if settings.metrics_port is not None and not g.get("metrics_port"):
            return jsonify({"ready": not reasons}), 200 if not reasons else 503  # details: METRICS_PORT
        feed = runtime.feed_view()
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "role": runtime.role,
            "pid": os.getpid(),
            "leader": runtime.elector.leader_identity() if runtime.elector else None,
            "feed": {
                "connected": bool(feed.get("connected")),
                "delivering": bool(feed.get("delivering", feed.get("connected"))),
                "source": feed.get("source"),
                "error": feed.get("error") or None,
                "unavailable_symbols": feed.get("unavailable", []),
            },
            "redis": None if runtime.redis is None else {"bus": bool(runtime.bus and runtime.bus.connected)},
            "connections": len(runtime.hub.connections),
        }
        return jsonify(body), 200 if not reasons else 503

    @app.get("/metrics")
    def metrics_view() -> Response:
        metrics.last_tick_age.set(runtime.last_tick_age())
        return Response(metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/")
    def index() -> Response:
        return send_from_directory(app.static_folder or "static", "index.html")
