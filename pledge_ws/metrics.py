"""Prometheus metrics, one registry per app so tests can build several apps in a process.

With several gunicorn workers, ``gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` and
every worker's values go to files there; ``/metrics`` then aggregates all live workers (gauges
by the mode given below), whichever worker answers the scrape.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, multiprocess


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge(
            "pledge_ws_connections", "Open /ws connections", registry=r, multiprocess_mode="livesum"
        )
        self.connections_rejected = Counter(
            "pledge_ws_connections_rejected_total", "/ws upgrades refused", ["reason"], registry=r
        )
        self.clients_closed = Counter(
            "pledge_ws_clients_closed_total", "/ws connections closed by the server", ["reason"], registry=r
        )
        self.clients_evicted = Counter(
            "pledge_ws_clients_evicted_total", "Clients evicted for not reading", ["reason"], registry=r
        )
        self.client_messages = Counter(
            "pledge_ws_client_messages_total", "Messages received from browsers", ["kind"], registry=r
        )
        self.frames_sent = Counter("pledge_ws_frames_sent_total", "Price frames handed to client sockets", registry=r)
        self.frames_conflated = Counter(
            "pledge_ws_frames_conflated_total", "Unsent prices replaced by a newer one for a slow client", registry=r
        )
        self.ticks_received = Counter("pledge_ws_ticks_received_total", "Valid ticks accepted", ["source"], registry=r)
        self.ticks_dropped = Counter(
            "pledge_ws_ticks_dropped_total", "Exchange frames or ticks dropped", ["reason"], registry=r
        )
        self.upstream_reconnects = Counter(
            "pledge_ws_upstream_reconnects_total", "Exchange connection attempts after the first", registry=r
        )
        self.upstream_connected = Gauge(
            "pledge_ws_upstream_connected",
            "1 while a process holds a subscribed exchange connection",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.last_tick_age = Gauge(
            "pledge_ws_last_tick_age_seconds",
            "Seconds since the last accepted tick (any symbol); -1 before the first",
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.redis_errors = Counter("pledge_ws_redis_errors_total", "Failed Redis operations", ["op"], registry=r)
        self.redis_up = Gauge("pledge_ws_redis_up", "1 while Redis answers", registry=r, multiprocess_mode="livemin")
        self.leader = Gauge(
            "pledge_ws_leader", "1 while a process here is the feed leader", registry=r, multiprocess_mode="livemax"
        )
        self.bus_connected = Gauge(
            "pledge_ws_bus_connected", "1 while subscribed to the Redis tick channel", registry=r
        )

        # issue 13: Redis high availability and fencing
        self.leader_term = Gauge(
            "pledge_ws_leader_term",
            "Leadership term this process holds or last held (0: never led)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.redis_failovers = Counter(
            "pledge_ws_redis_failovers_total",
            "Times the Redis writer found a different Redis server (Sentinel failover or restart)",
            registry=r,
        )
        self.fenced_writes = Counter(
            "pledge_ws_fenced_writes_total",
            "Latest-price writes refused by the fencing rule, or held back by a lapsed lease",
            ["reason"],
            registry=r,
        )

        # issue 11: recovery after a reconnect (/ws?since=...)
        self.recoveries = Counter(
            "pledge_ws_recoveries_total", "Symbols of since= answered, by outcome", ["result"], registry=r
        )
        self.recovered_ticks = Counter(
            "pledge_ws_recovered_ticks_total", "Missed prices replayed to recovering clients", registry=r
        )

        # issue 9: the exchange side (REST fallback, error frames)
        self.exchange_ticks = Counter(
            "pledge_ws_exchange_ticks_total", "Ticks read from the exchange, by source", ["source"], registry=r
        )
        self.feed_source = Gauge(
            "pledge_ws_feed_source",
            "1 for the source the feed holder's prices come from now (ws or rest)",
            ["source"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.rest_polls = Counter(
            "pledge_ws_rest_polls_total", "Level-1 REST calls of the fallback, by result", ["result"], registry=r
        )
        self.exchange_errors = Counter(
            "pledge_ws_exchange_errors_total", "type:error frames from the exchange, by code", ["code"], registry=r
        )

    def exposition(self) -> bytes:
        """The text format for ``/metrics``: all live workers' values in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
