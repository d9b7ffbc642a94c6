"""Wires the sides of one worker process together and runs its lifecycle.

Without Redis, the worker holds the exchange feed itself. With Redis, every worker takes part
in a leader election; only the leader runs the feed holder (holder.py) and writes Redis, and
every worker (the leader too) consumes the tick bus. The tick path is intake.py.

Nothing starts at import or construction: gunicorn forks workers first, and a greenlet or
socket created before the fork would be shared by every worker. :meth:`Runtime.start` runs in
each worker after the fork (``gunicorn.conf.py``), :meth:`Runtime.shutdown` on SIGTERM.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent

from pledge_ws import __version__
from pledge_ws.clients.hub import Hub
from pledge_ws.clients.replay import Replayer
from pledge_ws.clients.slots import ConnectionSlots
from pledge_ws.cluster.bus import BusSubscriber
from pledge_ws.cluster.client import connect_redis
from pledge_ws.cluster.leader import Elector, make_identity
from pledge_ws.cluster.stream import RedisHistory
from pledge_ws.cluster.writer import RedisWriter
from pledge_ws.config import Settings
from pledge_ws.core.book import PriceBook
from pledge_ws.core.liveness import Liveness
from pledge_ws.core.protocol import CLOSE_GOING_AWAY, SHUTDOWN_REASON, close_frame, error_payload, text_frame
from pledge_ws.core.readiness import FeedStatus, WorkerView, not_ready_reasons
from pledge_ws.metrics import Metrics
from pledge_ws.worker.holder import FeedHolder
from pledge_ws.worker.intake import TickIntake

log = logging.getLogger(__name__)

STALE_NOTICE = text_frame(error_payload("price feed interrupted"))


class Runtime:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.book = PriceBook()
        self.hub = Hub(settings.symbols, self.metrics, settings.slow_client_timeout)
        self.liveness = Liveness()  # what this worker has heard from the leader
        self.slots = ConnectionSlots()
        self.writer: RedisWriter | None = None
        self.stream: RedisHistory | None = None
        self.bus: BusSubscriber | None = None
        self.elector: Elector | None = None
        client = connect_redis(settings.redis_url) if settings.redis_url else None
        identity = make_identity()
        if client is not None:
            self.stream = RedisHistory(client, self.book)
            self.writer = RedisWriter(
                client,
                settings.primary_symbol,
                settings.price_key,
                self.metrics,
                self.book,
                url=settings.redis_url or "",
                history=self.stream,
                fence=self._write_term,
                identity=identity,
            )
        self.intake = TickIntake(
            settings, self.metrics, self.book, self.hub, self.liveness, self.leads, self.writer, self.stream
        )
        self.holder = FeedHolder(settings, self.metrics, self.intake.on_exchange_tick, self.writer)
        if client is not None:
            intake = self.intake
            self.bus = BusSubscriber(client, intake.on_bus_tick, intake.resync, self.metrics, on_beat=intake.on_beat)
            self.elector = Elector(
                client, self.holder, self.metrics, identity=identity, seen_term=lambda: self.liveness.newest_term
            )
        self.replayer = Replayer(self.book, self.stream, self.metrics)
        self.shutting_down = False
        self._greenlets: list[gevent.Greenlet] = []

    # -- who holds the feed ---------------------------------------------------------------

    def leads(self) -> bool:
        """Whether this worker holds the exchange feed (always, without Redis)."""
        return self.elector is None or self.elector.is_leader

    def _write_term(self) -> int | None:
        return None if self.elector is None else self.elector.write_term()

    @property
    def role(self) -> str:
        if self.elector is None:
            return "standalone"
        return "leader" if self.elector.is_leader else "follower"

    # -- status ---------------------------------------------------------------------------

    def feed_status(self) -> FeedStatus:
        """The exchange feed as this worker knows it: its own, or the leader's heartbeat."""
        return self.holder.status() if self.leads() else self.liveness.leader_feed(time.monotonic())

    def not_ready_reasons(self) -> list[str]:
        writer, elector, bus = self.writer, self.elector, self.bus
        view = WorkerView(
            shutting_down=self.shutting_down,
            feed=self.feed_status(),
            primary_symbol=self.settings.primary_symbol,
            redis=writer is not None,
            redis_ok=elector.redis_ok if elector else True,
            bus_up=bus.connected if bus else True,
            bus_error=bus.last_error if bus else "",
            leader=self.role == "leader",
            writes_ok=writer.healthy if writer else True,
            write_error=writer.last_error if writer else "",
        )
        return not_ready_reasons(view)

    def is_live(self) -> bool:
        """Whether prices served now are current, or possibly stale."""
        if self.leads():
            return self.holder.source() is not None
        return bool(self.bus and self.bus.connected and self.liveness.live(time.monotonic()))

    def watch_liveness(self, interval: float = 0.5) -> None:
        """Tell clients when prices stop being current, instead of leaving them in silence:
        on the change to stale every client gets a code -1 "price feed interrupted" frame (and
        so does each new client until prices are current again); the next price clears it."""
        was_live = False
        while True:
            if self.leads():
                self.holder.report()
            live = self.is_live()
            if live != was_live and (was_live or self.intake.last_tick_wall is not None):
                self.hub.set_notice(None if live else STALE_NOTICE)
                log.info("prices %s", "live again" if live else "stale", extra={"event": "live" if live else "stale"})
            was_live = live
            gevent.sleep(interval)

    def sample_process(self, interval: float = 5.0) -> None:
        """Per-worker fds, memory, CPU: listing 10,000 fds takes 5.4 ms, so every 5 s is 0.1 % of a core."""
        while True:
            self.metrics.sample_process()
            gevent.sleep(interval)

    # -- lifecycle ------------------------------------------------------------------------

    def _spawn(self, name: str, fn: Callable[[], None]) -> None:
        greenlet = gevent.spawn(fn)
        greenlet.name = name
        self._greenlets.append(greenlet)

    def start(self) -> None:
        if self._greenlets:
            return
        self.intake.load()
        self.metrics.connections_limit.set(self.settings.max_connections)
        self.metrics.build_info.labels(version=__version__).set(1)
        self._spawn("process-sampler", self.sample_process)
        self._spawn("broadcaster", self.hub.run_broadcaster)
        self._spawn("reaper", self.hub.run_reaper)
        self._spawn("liveness", self.watch_liveness)
        if self.elector is None:
            self.holder.start()
        else:
            assert self.writer is not None and self.bus is not None
            self._spawn("redis-writer", self.writer.run)
            self._spawn("bus", self.bus.run)
            self._spawn("elector", self.elector.run)
        log.info(
            "pledge-ws worker started",
            extra={"event": "worker_started", "symbols": list(self.settings.symbols), "redis": self.writer is not None},
        )

    def shutdown(self, grace: float = 3.0) -> None:
        """Close every client with 1001, hand leadership over, stop the feed and greenlets."""
        if self.shutting_down:
            return
        self.shutting_down = True
        count = self.hub.close_all(close_frame(CLOSE_GOING_AWAY, SHUTDOWN_REASON), "server shutting down")
        log.info("shutting down: closing %d clients", count, extra={"event": "shutdown", "clients": count})
        if self.elector is not None:
            self.elector.stop()  # releases the lock, so a follower takes over at once
        self.holder.stop()
        deadline = time.monotonic() + grace
        while self.hub.connections and time.monotonic() < deadline:
            gevent.sleep(0.05)
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
