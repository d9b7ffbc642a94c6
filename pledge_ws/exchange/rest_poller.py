"""The REST fallback's greenlet: level-1 polls while the exchange WebSocket is not delivering.

Run by the feed holder only, beside the WebSocket feed (one poller per deployment). When the
link has not delivered for :data:`DOWN_GRACE` seconds (a new leader's link counts as down
until it subscribes), each symbol's ``GET /api/v1/market/orderbook/level1`` is polled on
:class:`~pledge_ws.exchange.rest_schedule.PollSchedule`'s timetable and every answer goes to ``on_tick``, the
same path as WebSocket ticks: the order guard drops a sequence already seen, so an unchanged
price pushes nothing and a switch in either direction never sends an older price. Each time
the WebSocket (re)subscribes, each symbol is polled once (the ticker only sends the next
trade, so a price that moved during the gap would otherwise wait for one); then polls stop.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlencode

import gevent

from pledge_ws.core.ticks import Tick
from pledge_ws.exchange import kucoin
from pledge_ws.exchange.rest_schedule import CALL_TIMEOUT, FAILED, OK, RATE_LIMITED, PollSchedule, rate_limit_hold
from pledge_ws.metrics import Metrics

log = logging.getLogger(__name__)

DOWN_GRACE = 0.5  # a reconnect faster than this never starts polling
CHECK_EVERY = 0.25  # how often an idle poller looks at the WebSocket's state
MAX_BODY_BYTES = 16 * 1024


class RestPoller:
    def __init__(
        self,
        api_url: str,
        symbols: tuple[str, ...],
        interval: float,
        on_tick: Callable[[Tick], None],
        metrics: Metrics,
        ws_delivering: Callable[[], bool],
        unavailable: Callable[[], set[str]] = set,
        subscriptions: Callable[[], int] = lambda: 0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_url = api_url
        self.schedule = PollSchedule(symbols, interval)
        self.on_tick = on_tick
        self.metrics = metrics
        self.ws_delivering = ws_delivering
        self.unavailable = unavailable
        self.subscriptions = subscriptions
        self.now = now
        self.polling = False
        self._stopped = False

    def answering(self) -> bool:
        """REST supplies current prices now (only while the WebSocket does not)."""
        return self.polling and self.schedule.answering(self.now())

    def run(self) -> None:
        """Poll while the WebSocket is down; returns only after :meth:`stop`."""
        self._stopped = False
        down_since: float | None = self.now()  # a new feed holder's link is down until it delivers
        handover: list[str] = []
        subscribed = 0
        try:
            while not self._stopped:
                now = self.now()
                if self.ws_delivering():
                    down_since = None
                    self._switch(False)
                    if self.subscriptions() != subscribed:
                        # A new subscription's ticker sends nothing until the next trade (on an
                        # illiquid pair, minutes): one poll of each symbol closes the seam for
                        # a price that moved during the gap (the order guard drops the rest).
                        subscribed = self.subscriptions()
                        handover = [s for s in self.schedule.symbols if s not in self.unavailable()]
                    if handover and self.schedule.wait(now) == 0:
                        self._poll(handover.pop(0))
                        continue
                    gevent.sleep(min(CHECK_EVERY, self.schedule.wait(now)) if handover else CHECK_EVERY)
                    continue
                handover = []
                if down_since is None:
                    down_since = now
                if now - down_since < DOWN_GRACE:
                    gevent.sleep(min(CHECK_EVERY, DOWN_GRACE - (now - down_since)))
                    continue
                self._switch(True)
                symbol, wait = self.schedule.due(now, frozenset(self.unavailable()))
                if symbol is None:
                    gevent.sleep(min(wait, CHECK_EVERY))
                    continue
                self._poll(symbol)
                self._report_source()
        finally:
            self.polling = False
            self.metrics.exchange_source.labels(source="rest").set(0)

    def stop(self) -> None:
        self._stopped = True

    def _switch(self, polling: bool) -> None:
        if polling == self.polling:
            return
        self.polling = polling
        self.schedule.forget()  # only answers since this switch count (not hand-over polls)
        if polling:
            self.schedule.restart(self.now())
            log.warning(
                "exchange WebSocket not delivering: polling level-1 REST (one call every %.2fs)",
                self.schedule.spacing,
                extra={"event": "feed_source", "source": "rest"},
            )
        else:
            log.info("exchange WebSocket delivering: REST polls stop", extra={"event": "feed_source", "source": "ws"})
        self._report_source()

    def _report_source(self) -> None:
        self.metrics.exchange_source.labels(source="rest").set(1 if self.answering() else 0)

    def _poll(self, symbol: str) -> None:
        url = f"{self.api_url}/api/v1/market/orderbook/level1?{urlencode({'symbol': symbol})}"
        outcome, hold, result = FAILED, 0.0, "error"
        tick: Tick | None = None
        try:
            with urllib.request.urlopen(url, timeout=CALL_TIMEOUT) as response:
                body = response.read(MAX_BODY_BYTES + 1)
            tick = kucoin.parse_level1(symbol, body)
            outcome, result = OK, "ok"
        except urllib.error.HTTPError as exc:
            if exc.code == 429:
                outcome, result = RATE_LIMITED, "rate_limited"
                hold = rate_limit_hold(exc.headers.get("gw-ratelimit-reset"))
                log.warning(
                    "exchange REST rate limit (429): no call for %.1fs",
                    hold,
                    extra={"event": "rest_rate_limited", "hold": hold},
                )
            else:
                result = f"http_{exc.code // 100}xx"
        except kucoin.Level1Error as exc:
            result = exc.reason
        except (OSError, ValueError) as exc:  # refused, reset, timed out, bad URL
            log.debug("level-1 poll of %s failed: %s", symbol, exc)
        self.schedule.record(self.now(), outcome, hold)
        self.metrics.exchange_rest_polls.labels(result=result).inc()
        if tick is not None:
            self.metrics.exchange_ticks.labels(source="rest").inc()
            self.on_tick(tick)
