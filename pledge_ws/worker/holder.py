"""The feed holder: what the process that leads (or a standalone worker) runs.

The exchange WebSocket feed, the REST fallback beside it, and the Redis writer's queue, as
one object the elector starts and stops (cluster/leader.py ``FeedHolder``); its
:meth:`FeedHolder.status` is the one answer to "where do prices come from now".
"""

from __future__ import annotations

from collections.abc import Callable

import gevent

from pledge_ws.cluster.writer import RedisWriter
from pledge_ws.config import Settings
from pledge_ws.core.readiness import FeedStatus
from pledge_ws.core.ticks import Tick
from pledge_ws.exchange.feed import ExchangeFeed
from pledge_ws.exchange.rest_poller import RestPoller
from pledge_ws.metrics import Metrics


class FeedHolder:
    def __init__(
        self, settings: Settings, metrics: Metrics, on_tick: Callable[[Tick], None], writer: RedisWriter | None
    ) -> None:
        self.metrics = metrics
        self.writer = writer
        self.feed = ExchangeFeed(settings.kucoin_api_url, settings.symbols, on_tick, metrics)
        self.poller: RestPoller | None = None
        if settings.rest_fallback_interval > 0:
            state = self.feed.state
            self.poller = RestPoller(
                settings.kucoin_api_url,
                settings.symbols,
                settings.rest_fallback_interval,
                on_tick,
                metrics,
                ws_delivering=lambda: state.connected,
                unavailable=lambda: state.unavailable,
                subscriptions=lambda: state.subscriptions,
            )
        self._greenlets: list[gevent.Greenlet] = []

    def start(self) -> None:
        """Run the feed (and the fallback); a no-op while they run."""
        if any(not g.dead for g in self._greenlets):
            return
        self._greenlets = [self._spawn("exchange-feed", self.feed.run)]
        if self.poller is not None:
            self._greenlets.append(self._spawn("rest-fallback", self.poller.run))

    @staticmethod
    def _spawn(name: str, run: Callable[[], None]) -> gevent.Greenlet:
        greenlet = gevent.spawn(run)
        greenlet.name = name
        return greenlet

    def stop(self) -> None:
        """Stop both, and forget what waits to be written: the next leader writes."""
        self.feed.stop()
        if self.poller is not None:
            self.poller.stop()
        if self.writer is not None:
            self.writer.discard()
        for greenlet in self._greenlets:
            greenlet.kill(block=True, timeout=2)
        self._greenlets = []

    def source(self) -> str | None:
        """Where prices come from now: the WebSocket, REST, or nowhere."""
        if self.feed.state.connected:
            return "ws"
        if self.poller is not None and self.poller.answering():
            return "rest"
        return None

    def status(self) -> FeedStatus:
        state = self.feed.state
        return FeedStatus(state.connected, self.source(), state.last_error, tuple(sorted(state.unavailable)))

    def report(self) -> None:
        """The WebSocket's share of ``pledge_ws_exchange_source`` (the poller reports its own)."""
        self.metrics.exchange_source.labels(source="ws").set(1 if self.feed.state.connected else 0)
