"""``/ws`` (docs/protocol.md): the guard that refuses at the HTTP stage what must not become a
WebSocket, and the route that hands an accepted socket to its session."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from flask import Blueprint, Response, jsonify, request

from pledge_ws.clients.session import ClientSession
from pledge_ws.core.protocol import Invalid, normalize_symbols
from pledge_ws.core.recovery import parse_since
from pledge_ws.web.upgrade import UpgradeSock
from pledge_ws.worker.runtime import Runtime

WS_UPGRADE = "pledge_ws.upgrade"  # environ key of the checked upgrade (the guard -> the view)


@dataclass(frozen=True, slots=True)
class WsUpgrade:
    """What the guard established for one ``/ws`` upgrade, for the view and the teardown."""

    symbols: tuple[str, ...]
    since: dict[str, int] | None
    ip: str
    started: float  # perf_counter() when the guard began: pledge_ws_upgrade_seconds


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


def _error(status: int, message: str, **extra: object) -> tuple[Response, int]:
    return jsonify({"error": message, **extra}), status


def ws_blueprint(runtime: Runtime, sock: UpgradeSock) -> Blueprint:
    settings, metrics, slots = runtime.settings, runtime.metrics, runtime.slots
    bp = Blueprint("ws", __name__)

    # App-wide, not only for requests routed to this blueprint: a plain GET of /ws fails
    # routing (flask-sock's rule matches WebSocket requests only) and must still get this
    # guard's JSON 400.
    @bp.before_app_request
    def guard_websocket_upgrade() -> tuple[Response, int] | None:
        """Refuse with a clear status and body: origin 403, shutting down or full 503, too many
        from one address 429, bad ``symbols`` or ``since`` 400.

        Reads the WSGI environ directly (one context lookup, not one per header) and leaves
        what the view needs in one :class:`WsUpgrade`: a storm is bounded by each upgrade's CPU.
        """
        req = request._get_current_object()  # type: ignore[attr-defined]
        if req.path != "/ws":
            return None
        started = time.perf_counter()
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
        if slots.taken >= settings.max_connections:
            metrics.connections_rejected.labels(reason="max_connections").inc()
            return _error(503, "too many connections, try again later")
        ip = client_ip(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"), settings.trusted_proxies)
        limit = settings.max_connections_per_ip
        if limit and slots.of(ip) >= limit:
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
        slots.take(ip)  # released in release_ws_slot below
        environ[WS_UPGRADE] = WsUpgrade(symbols, since, ip, started)
        return None

    @bp.teardown_app_request
    def release_ws_slot(_exc: BaseException | None) -> None:
        upgrade = request.environ.pop(WS_UPGRADE, None)
        if upgrade is not None:
            slots.release(upgrade.ip)

    @sock.route("/ws", bp=bp)
    def ws_endpoint(ws: object) -> None:
        upgrade: WsUpgrade = request.environ[WS_UPGRADE]
        metrics.upgrade_seconds.observe(time.perf_counter() - upgrade.started)  # the 101 is written
        ClientSession(
            ws,
            runtime.hub,
            settings,
            metrics,
            upgrade.symbols,
            peer=upgrade.ip,
            since=upgrade.since,
            replayer=runtime.replayer,
        ).run()

    return bp
