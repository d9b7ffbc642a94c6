"""What operators and probes read: ``/healthz``, ``/readyz``, ``/metrics``, and ``METRICS_PORT``
(a second listener that alone answers them in detail, so host names, pids and the leader's
identity stay off the public port)."""

from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from pledge_ws.worker.runtime import Runtime

# With METRICS_PORT set, the only paths its listener answers; the public port loses /metrics.
METRICS_PORT_PATHS = frozenset({"/metrics", "/readyz", "/healthz"})


def on_metrics_port(server_port: str | None, metrics_port: int | None) -> bool:
    """Whether a request came in on the METRICS_PORT listener (gunicorn's SERVER_PORT is the
    listening socket's port, not the Host header's, so a client cannot claim it)."""
    return metrics_port is not None and server_port == str(metrics_port)


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


def split_ports(app: Flask, metrics_port: int | None) -> None:
    """Every request, every route: the METRICS_PORT listener serves only METRICS_PORT_PATHS."""
    if metrics_port is None:
        return

    @app.before_request
    def split_public_and_metrics_ports() -> tuple[Response, int] | None:
        g.metrics_port = on_metrics_port(request.environ.get("SERVER_PORT"), metrics_port)
        if g.metrics_port and request.path not in METRICS_PORT_PATHS:
            return _error(404, "not found: this port serves only /metrics, /readyz and /healthz")
        if not g.metrics_port and request.path == "/metrics":
            return _error(404, "not found")
        return None


def ops_blueprint(runtime: Runtime) -> Blueprint:
    settings, metrics = runtime.settings, runtime.metrics
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @bp.get("/readyz")
    def readyz() -> tuple[Response, int]:
        reasons = runtime.not_ready_reasons()
        status = 200 if not reasons else 503
        if settings.metrics_port is not None and not g.get("metrics_port"):
            return jsonify({"ready": not reasons}), status  # the details: METRICS_PORT only
        feed = runtime.feed_status()
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "role": runtime.role,
            "pid": os.getpid(),
            "leader": runtime.elector.leader_identity() if runtime.elector else None,
            "feed": {
                "connected": feed.connected,
                "delivering": feed.delivering,
                "source": feed.source,
                "error": feed.error or None,
                "unavailable_symbols": list(feed.unavailable),
            },
            "redis": None if runtime.writer is None else {"bus": bool(runtime.bus and runtime.bus.connected)},
            "connections": len(runtime.hub.connections),
        }
        return jsonify(body), status

    @bp.get("/metrics")
    def metrics_view() -> Response:
        return Response(metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)

    return bp
