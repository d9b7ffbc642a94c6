"""Wires the pieces of one worker process together and owns their greenlets.

Without Redis, the worker runs the exchange feed itself. With Redis, every worker takes
part in a leader election; only the leader runs the feed and writes Redis, and every worker
(the leader too) consumes the tick channel. The leader also hands its ticks straight to its
own broadcaster, so its clients keep getting prices while Redis is down; the order guard
drops the copy that comes back over the bus.

Nothing starts at import or construction: gunicorn forks workers first, and a greenlet or
socket created before the fork would be shared by every worker. ``start()`` runs in each
worker after the fork (see ``gunicorn.conf.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent

from pledge_ws.bus import BusSubscriber
from pledge_ws.config import Settings
from pledge_ws.feed import ExchangeFeed
from pledge_ws.history import LocalHistory, RedisHistory
from pledge_ws.hub import Hub
from pledge_ws.leader import Elector, make_identity
from pledge_ws.liveness import Liveness
from pledge_ws.metrics import Metrics
from pledge_ws.poller import RestPoller
from pledge_ws.protocol import CLOSE_GOING_AWAY, SHUTDOWN_REASON, close_frame, error_payload, text_frame
from pledge_ws.recoverer import Recoverer
from pledge_ws.redis_client import connect_redis
from pledge_ws.store import HISTORY_LIMIT, PriceBook, RedisWriter
from pledge_ws.ticks import SequenceGuard, Tick, relative_jump

log = logging.getLogger(__name__)

STALE_NOTICE = text_frame(error_payload("price feed interrupted"))


class Runtime:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._symbols = frozenset(settings.symbols)
        self.book = PriceBook()
        self.guard = SequenceGuard()
        self.hub = Hub(settings.symbols, self.metrics, settings.slow_client_timeout)
        self.feed = ExchangeFeed(settings.kucoin_api_url, settings.symbols, self.on_exchange_tick, self.metrics)
        self.poller: RestPoller | None = None  # the REST fallback, beside the feed (poller.py)
        if settings.rest_fallback_interval > 0:
            self.poller = RestPoller(
                settings.kucoin_api_url,
                settings.symbols,
                settings.rest_fallback_interval,
                self.on_exchange_tick,
                self.metrics,
                ws_delivering=lambda: self.feed.state.connected,
                unavailable=lambda: self.feed.state.unavailable,
                subscriptions=lambda: self.feed.state.subscriptions,
            )
        self.liveness = Liveness()  # what this worker has heard from the leader (liveness.py)
        self.redis: RedisWriter | None = None
        self.bus: BusSubscriber | None = None
        self.elector: Elector | None = None
        self.history = LocalHistory(HISTORY_LIMIT)  # what recovery reads first (history.py)
        self.shared_history: RedisHistory | None = None
        if settings.redis_url:
            client = connect_redis(settings.redis_url)
            identity = make_identity()
            self.shared_history = RedisHistory(client, self.history)
            self.redis = RedisWriter(
                client,
                settings.primary_symbol,
                settings.price_key,
                self.metrics,
                self.book,
                url=settings.redis_url,
                history=self.shared_history,
                fence=self._write_term,
                identity=identity,
            )
            self.bus = BusSubscriber(client, self.on_bus_tick, self.resync, self.metrics, on_beat=self.on_beat)
            self.elector = Elector(
                client,
                self._start_feed,
                self._stop_feed,
                self._feed_status,
                self.metrics,
                identity=identity,
                seen_term=lambda: self.liveness.newest_term,
            )
        self.recoverer = Recoverer(self.history, self.shared_history, self.metrics)
        self.clients_per_ip: dict[str, int] = {}
        self.ws_slots = 0  # /ws connections, counted from the accepted upgrade request
        self._held: dict[str, Tick] = {}  # a suspected bad print per symbol, awaiting confirmation
        self.shutting_down = False
        self._greenlets: list[gevent.Greenlet] = []
        self._feed_greenlet: gevent.Greenlet | None = None
        self._poller_greenlet: gevent.Greenlet | None = None
        self._last_tick_wall: float | None = None

    # -- the tick path --------------------------------------------------------------------

    def on_exchange_tick(self, tick: Tick) -> None:
        """Called by the feed greenlet for each parsed tick; must never block."""
        if not self.guard.accept(tick):
            # A poll that returns a sequence already seen is the normal case, not a fault.
            reason = "rest_unchanged" if tick.source == "rest" else "out_of_order"
            self.metrics.ticks_dropped.labels(reason=reason).inc()
            return
        if self._is_bad_print(tick):
            return
        self.metrics.ticks_received.labels(source="exchange").inc()
        self._accept(tick)
        if self.redis is not None:
            self.redis.offer(tick)

    def on_bus_tick(self, tick: Tick, heard: bool = True) -> None:
        """Called by the bus greenlet; the leader's own ticks come back and are dropped here,
        and so is anything from an older leadership term than the newest one heard."""
        if tick.symbol not in self._symbols:
            return
        if not self.liveness.tick(tick.term, time.monotonic(), heard):
            self.metrics.ticks_dropped.labels(reason="old_term").inc()
            return
        if not self.guard.accept(tick):
            return
        self.metrics.ticks_received.labels(source="bus").inc()
        self._accept(tick)

    def on_beat(self, raw: bytes) -> None:
        """The leader's status, published every second on the bus (leader.py)."""
        if not self.liveness.beat(raw, time.monotonic()):
            self.metrics.ticks_dropped.labels(reason="bad_beat").inc()

    def _write_term(self) -> int | None:
        return None if self.elector is None else self.elector.write_term()

    def resync(self) -> None:
        """Catch up from the latest prices in Redis (after the bus (re)connects)."""
        if self.redis is None:
            return
        if self.elector is None or not self.elector.is_leader:
            # Bus messages may have been missed: the local history's chain breaks here, unless
            # the Stream's top is our own last entry (XADD precedes PUBLISH, so nothing was
            # published before our SUBSCRIBE that we lack). Without this, a worker restarted
            # while prices were still broke the chain for nothing, and if it became the leader,
            # recovery across that failover answered "not recovered".
            tops = self.shared_history.tops(self.settings.symbols) if self.shared_history else None
            self.history.mark_gap(
                s for s in self.settings.symbols if tops is None or tops.get(s) != self.history.last_order(s)
            )
        for tick in sorted(self.redis.read_latest(self.settings.symbols), key=lambda t: t.order):
            self.on_bus_tick(tick, heard=False)  # read back, not heard: no proof the feed is live

    def _accept(self, tick: Tick) -> None:
        self._last_tick_wall = time.time()
        self.book.update(tick)
        self.history.append(tick)
        self.hub.offer(tick)

    def _is_bad_print(self, tick: Tick) -> bool:
        """A tick that jumps beyond MAX_PRICE_JUMP is held back, unless the next tick
        confirms the new level (two consecutive prints agree: the market really moved)."""
        limit = self.settings.max_price_jump
        previous = self.book.get(tick.symbol)
        if not limit or previous is None or relative_jump(previous.price, tick.price) <= limit:
            self._held.pop(tick.symbol, None)
            return False
        held = self._held.pop(tick.symbol, None)
        if held is not None and relative_jump(held.price, tick.price) <= limit:
            log.warning(
                "price jump on %s confirmed by two prints: %s -> %s",
                tick.symbol,
                previous.price,
                tick.price,
                extra={"event": "price_jump_confirmed", "symbol": tick.symbol, "price": tick.price},
            )
            return False
        self._held[tick.symbol] = tick
        self.metrics.ticks_dropped.labels(reason="price_jump").inc()
        log.warning(
            "held back %s %s: moves %.1f%% from %s (MAX_PRICE_JUMP=%g)",
            tick.symbol,
            tick.price,
            relative_jump(previous.price, tick.price) * 100,
            previous.price,
            limit,
            extra={"event": "bad_print", "symbol": tick.symbol, "price": tick.price, "previous": previous.price},
        )
        return True

    def last_tick_age(self) -> float:
        return -1.0 if self._last_tick_wall is None else time.time() - self._last_tick_wall

    # -- connection accounting ------------------------------------------------------------

    def take_ws_slot(self, ip: str) -> None:
        self.ws_slots += 1
        self.clients_per_ip[ip] = self.clients_per_ip.get(ip, 0) + 1

    def release_ws_slot(self, ip: str) -> None:
        self.ws_slots -= 1
        left = self.clients_per_ip.get(ip, 1) - 1
        if left > 0:
            self.clients_per_ip[ip] = left
        else:
            self.clients_per_ip.pop(ip, None)

    # -- leadership -----------------------------------------------------------------------

    def _start_feed(self) -> None:
        if self._feed_greenlet is None or self._feed_greenlet.dead:
            self._feed_greenlet = gevent.spawn(self.feed.run)
            self._feed_greenlet.name = "exchange-feed"
        if self.poller is not None and (self._poller_greenlet is None or self._poller_greenlet.dead):
            self._poller_greenlet = gevent.spawn(self.poller.run)
            self._poller_greenlet.name = "rest-fallback"

    def _stop_feed(self) -> None:
        self.feed.stop()
        if self.poller is not None:
            self.poller.stop()
        if self.redis is not None:
            self.redis.discard()  # the next leader writes; our queue would only be refused
        for greenlet in (self._feed_greenlet, self._poller_greenlet):
            if greenlet is not None:
                greenlet.kill(block=True, timeout=2)
        self._feed_greenlet = self._poller_greenlet = None

    def _feed_source(self) -> str | None:
        """Where this feed holder's prices come from now: the WebSocket, REST, or nowhere."""
        if self.feed.state.connected:
            return "ws"
        if self.poller is not None and self.poller.answering():
            return "rest"
        return None

    def _feed_status(self) -> dict[str, object]:
        state = self.feed.state
        source = self._feed_source()
        return {
            "connected": state.connected,
            "delivering": source is not None,
            "source": source,
            "error": state.last_error,
            "unavailable": sorted(state.unavailable),
        }

    @property
    def role(self) -> str:
        if self.elector is None:
            return "standalone"
        return "leader" if self.elector.is_leader else "follower"

    # -- status ---------------------------------------------------------------------------

    def feed_view(self) -> dict[str, object]:
        """The exchange feed's status as this worker knows it (its own, or the leader's)."""
        if self.elector is None or self.elector.is_leader:
            return self._feed_status()
        return self.liveness.leader_feed(time.monotonic())

    def not_ready_reasons(self) -> list[str]:
        reasons = []
        if self.shutting_down:
            reasons.append("shutting down")
        feed = self.feed_view()
        if not feed.get("delivering", feed.get("connected")):
            reasons.append(f"exchange feed not delivering (WebSocket: {feed.get('error')}; no REST fallback answer)")
        unavailable = feed.get("unavailable") or []
        if isinstance(unavailable, list) and self.settings.primary_symbol in unavailable:
            reasons.append(f"primary symbol {self.settings.primary_symbol} not found on the exchange")
        if self.redis is not None and self.elector is not None and self.bus is not None:
            if not self.elector.redis_ok:
                reasons.append("redis unreachable")
            if not self.bus.connected:
                reasons.append(f"tick bus not subscribed: {self.bus.last_error}")
            if self.elector.is_leader and not self.redis.healthy:
                reasons.append(f"redis writes failing: {self.redis.last_error}")
        return reasons

    def is_live(self) -> bool:
        """Whether prices served now are current, or possibly stale."""
        if self.elector is None or self.elector.is_leader:
            return self._feed_source() is not None
        return bool(self.bus and self.bus.connected and self.liveness.live(time.monotonic()))

    def watch_liveness(self, interval: float = 0.5) -> None:
        """Tell clients when prices stop being current, instead of leaving them in silence.

        On the transition to stale every client gets a code -1 "price feed interrupted"
        frame (and so does each new client until prices are current again); the next
        price frame is the all-clear.
        """
        was_live = False
        while True:
            if self.elector is None or self.elector.is_leader:
                self.metrics.feed_source.labels(source="ws").set(1 if self.feed.state.connected else 0)
            live = self.is_live()
            if live != was_live and (was_live or self._last_tick_wall is not None):
                self.hub.set_notice(None if live else STALE_NOTICE)
                log.info("prices %s", "live again" if live else "stale", extra={"event": "live" if live else "stale"})
            was_live = live
            gevent.sleep(interval)

    # -- lifecycle ------------------------------------------------------------------------

    def _spawn(self, name: str, fn: Callable[[], None]) -> None:
        greenlet = gevent.spawn(fn)
        greenlet.name = name
        self._greenlets.append(greenlet)

    def start(self) -> None:
        if self._greenlets:
            return
        if self.shared_history is not None:
            for symbol in self.settings.symbols:
                ticks, entries = self.shared_history.tail(symbol)
                for tick in ticks:
                    if self.guard.accept(tick):
                        self.book.update(tick)
                self.history.load(symbol, entries)
            for tick in self.book.all():
                self.hub.seed(tick)
        self._spawn("broadcaster", self.hub.run_broadcaster)
        self._spawn("reaper", self.hub.run_reaper)
        self._spawn("liveness", self.watch_liveness)
        if self.elector is None:
            self._start_feed()
        else:
            assert self.redis is not None and self.bus is not None
            self._spawn("redis-writer", self.redis.run)
            self._spawn("bus", self.bus.run)
            self._spawn("elector", self.elector.run)
        log.info(
            "pledge-ws worker started",
            extra={"event": "worker_started", "symbols": list(self.settings.symbols), "redis": self.redis is not None},
        )

    def shutdown(self, grace: float = 3.0) -> None:
        """Close every client with 1001, hand leadership over, stop the feed and greenlets."""
        if self.shutting_down:
            return
        self.shutting_down = True
        count = self.hub.close_all(close_frame(CLOSE_GOING_AWAY, SHUTDOWN_REASON), "server shutting down")
        log.info("shutting down: closing %d clients", count, extra={"event": "shutdown", "clients": count})
        if self.elector is not None:
            self.elector.stop()
        self._stop_feed()
        deadline = time.monotonic() + grace
        while self.hub.connections and time.monotonic() < deadline:
            gevent.sleep(0.05)
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
