"""Prometheus metrics, one registry per app so tests can build several apps in a process.

With several gunicorn workers, ``gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` and
every worker's values go to files there; ``/metrics`` then aggregates all live workers,
whichever worker answers the scrape. Each gauge says how (``multiprocess_mode``): summed over
live workers (connections), the max or min of live ones (leader, feed, Redis), or one series
per live worker with a ``pid`` label (``liveall``: the process gauges). ``live*`` modes forget a
dead worker (``child_exit`` in the gunicorn settings), so its last value never misleads.

One prefix per concept: ``pledge_ws_exchange_*`` is the exchange link (WebSocket and REST),
``pledge_ws_process_*`` a worker process, ``pledge_ws_redis_*`` Redis. docs/operations.md lists
every series.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

# Exchange time to the frame handed to the sockets. The fan-out benchmark (bench/README.md)
# measures client receipt at p50 4-27 ms and p99 9-64 ms up to 5,000 clients, and ~0.5-1 s at
# 10,000 on one core; the buckets resolve that range, and the tail of an exchange hop.
DELIVERY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One /ws upgrade (guard, handshake, 101 written): ~0.3 ms in-process, ~1-1.5 ms of CPU per
# connection during a 10,000-client storm (bench/README.md "Connection storm").
UPGRADE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        def gauge(name: str, doc: str, mode: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=r, multiprocess_mode=mode)

        # -- clients ----------------------------------------------------------------------------
        self.connections = gauge("pledge_ws_connections", "Open /ws connections", "livesum")
        self.connections_limit = gauge(
            "pledge_ws_connections_limit", "MAX_CONNECTIONS, summed like pledge_ws_connections", "livesum"
        )
        self.connections_rejected = Counter(
            "pledge_ws_connections_rejected_total", "/ws upgrades refused", ["reason"], registry=r
        )
        self.upgrade_seconds = Histogram(
            "pledge_ws_upgrade_seconds", "One /ws upgrade: guard, handshake, 101", buckets=UPGRADE_BUCKETS, registry=r
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
        self.tick_delivery = Histogram(
            "pledge_ws_tick_delivery_seconds",
            "Exchange time of a tick to its frame handed to this worker's sockets (one per tick per worker)",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.recoveries = Counter(
            "pledge_ws_recoveries_total", "Symbols of since= answered, by outcome", ["result"], registry=r
        )
        self.recovered_ticks = Counter(
            "pledge_ws_recovered_ticks_total", "Missed prices replayed to recovering clients", registry=r
        )

        # -- ticks ------------------------------------------------------------------------------
        self.ticks_received = Counter("pledge_ws_ticks_received_total", "Valid ticks accepted", ["source"], registry=r)
        self.ticks_dropped = Counter(
            "pledge_ws_ticks_dropped_total", "Exchange frames or ticks dropped", ["reason"], registry=r
        )
        self.last_tick = gauge(
            "pledge_ws_last_tick_timestamp_seconds",
            "Unix time this worker last accepted a tick (any symbol); its age is time() minus it",
            "livemax",
        )

        # -- the exchange link (feed holder only) -------------------------------------------------
        self.exchange_connected = gauge(
            "pledge_ws_exchange_connected", "1 while a process holds a subscribed exchange WebSocket", "livemax"
        )
        self.exchange_source = gauge(
            "pledge_ws_exchange_source",
            "1 for the source the feed holder's prices come from now (ws or rest)",
            "livemax",
            ("source",),
        )
        self.exchange_reconnects = Counter(
            "pledge_ws_exchange_reconnects_total", "Exchange WebSocket sessions that ended", registry=r
        )
        self.exchange_ticks = Counter(
            "pledge_ws_exchange_ticks_total", "Ticks read from the exchange, by source", ["source"], registry=r
        )
        self.exchange_errors = Counter(
            "pledge_ws_exchange_errors_total", "type:error frames from the exchange, by code", ["code"], registry=r
        )
        self.exchange_rest_polls = Counter(
            "pledge_ws_exchange_rest_polls_total",
            "Level-1 REST calls of the fallback, by result",
            ["result"],
            registry=r,
        )

        # -- Redis, leadership, fencing ---------------------------------------------------------
        self.redis_errors = Counter("pledge_ws_redis_errors_total", "Failed Redis operations", ["op"], registry=r)
        self.redis_up = gauge("pledge_ws_redis_up", "1 while Redis answers", "livemin")
        self.redis_failovers = Counter(
            "pledge_ws_redis_failovers_total",
            "Times the Redis writer found a different Redis server (Sentinel failover or restart)",
            registry=r,
        )
        self.bus_connected = gauge("pledge_ws_bus_connected", "1 while subscribed to the Redis tick channel", "livemin")
        self.leader = gauge("pledge_ws_leader", "1 while a process here is the feed leader", "livemax")
        self.leader_term = gauge(
            "pledge_ws_leader_term", "Leadership term this process holds or last held (0: never led)", "livemax"
        )
        self.fenced_writes = Counter(
            "pledge_ws_fenced_writes_total",
            "Latest-price writes refused by the fencing rule, or held back by a lapsed lease",
            ["reason"],
            registry=r,
        )

        # -- the process ------------------------------------------------------------------------
        self.build_info = gauge("pledge_ws_build_info", "1, labelled with the package version", "livemax", ("version",))
        self.process_open_fds = gauge("pledge_ws_process_open_fds", "Open file descriptors of a worker", "liveall")
        self.process_rss = gauge("pledge_ws_process_resident_memory_bytes", "Resident memory of a worker", "liveall")
        self.process_cpu = gauge(
            "pledge_ws_process_cpu_seconds", "User and system CPU a worker used since it started (rate() it)", "liveall"
        )

    def sample_process(self) -> None:
        """This worker's fds, memory and CPU (each worker samples itself: multiprocess mode)."""
        try:
            self.process_open_fds.set(len(os.listdir("/proc/self/fd")))
            with open("/proc/self/statm") as statm:
                self.process_rss.set(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
        except OSError:
            return
        times = os.times()
        self.process_cpu.set(times.user + times.system)

    def exposition(self) -> bytes:
        """The text format for ``/metrics``: all live workers' values in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
