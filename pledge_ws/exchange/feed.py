"""The exchange greenlet: one websocket-client connection to KuCoin, reconnected forever.

Each session asks for a fresh bullet token, connects with a unique ``connectId`` to the
``instanceServers`` entry :class:`~pledge_ws.exchange.reconnect.ReconnectPolicy` picks, waits a bounded
time for ``welcome``, subscribes every symbol and waits for the ``ack``, then reads ticks while
:class:`~pledge_ws.core.clock.UpstreamClock` decides when to ping and when the link is dead. Any
failure ends the session; the policy says how long to wait and which entry comes next.
Ticks go to ``on_tick``, which must not block: nothing downstream can stall this loop.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
import websocket

from pledge_ws.core.clock import PING, Backoff, UpstreamClock
from pledge_ws.core.ticks import Tick
from pledge_ws.exchange import kucoin
from pledge_ws.exchange.reconnect import RATE_LIMITED, TOKEN_REJECTED, Ended, ReconnectPolicy
from pledge_ws.metrics import Metrics

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # bullet request, TCP+WS connect, subscribe ack: each bounded
WELCOME_TIMEOUT = 5.0  # a live endpoint greets at once; one that does not is not worth waiting for
MAX_BULLET_BYTES = 64 * 1024


class SessionEnded(Exception):
    """The current exchange session is over; ``reason`` says why (for logs)."""


@dataclass
class FeedState:
    """What ``/readyz`` and ``/price`` report about the exchange link."""

    connected: bool = False
    last_error: str = "not connected yet"
    unavailable: set[str] = field(default_factory=set)
    last_tick_at: float | None = None
    sessions: int = 0
    subscriptions: int = 0  # sessions that reached "subscribed": each one's ticker starts silent


def fetch_bullet(api_url: str, timeout: float) -> bytes:
    request = urllib.request.Request(f"{api_url}/api/v1/bullet-public", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read(MAX_BULLET_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise kucoin.BulletError(f"bullet endpoint answered HTTP {exc.code}") from exc


class ExchangeFeed:
    def __init__(
        self,
        api_url: str,
        symbols: tuple[str, ...],
        on_tick: Callable[[Tick], None],
        metrics: Metrics,
        backoff: Backoff | None = None,
        now: Callable[[], float] = time.monotonic,
        max_session_age: float = kucoin.MAX_SESSION_SECONDS,
    ) -> None:
        self.api_url = api_url
        self.symbols = symbols
        self.on_tick = on_tick
        self.metrics = metrics
        # Capped at 8 s: one link per deployment, and a link back must deliver within 10 s.
        self.policy = ReconnectPolicy(backoff or Backoff(base=0.25, cap=8.0))
        self.now = now
        self.max_session_age = max_session_age
        self.state = FeedState()
        self._ws: websocket.WebSocket | None = None
        self._stopped = False
        # The current session, as the policy will judge it (reset by each session).
        self._endpoint: str | None = None
        self._candidates: tuple[str, ...] = ()
        self._subscribed = False  # every subscription acknowledged
        self._delivered = False  # a tick or a pong arrived since

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> None:
        """Connect, read, reconnect as the policy says; returns only after :meth:`stop`."""
        self._stopped = False
        while not self._stopped:
            try:
                self._session()
            except SessionEnded as exc:
                reason = str(exc)
            except (OSError, websocket.WebSocketException, kucoin.BulletError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # never let a bug end the feed for good
                log.exception("exchange session crashed", extra={"event": "feed_crashed"})
                reason = f"bug: {type(exc).__name__}: {exc}"
            finally:
                self._close_ws()
                if self.state.connected:
                    self.state.connected = False
                    self.metrics.exchange_connected.set(0)
            if self._stopped:
                break
            self.state.last_error = reason
            outcome = Ended(reason, self._endpoint, self._candidates, self._subscribed, self._delivered)
            delay = self.policy.ended(outcome)
            self.metrics.exchange_reconnects.inc()
            log.warning(
                "exchange link down (%s); reconnecting in %.1fs",
                reason,
                delay,
                extra={
                    "event": "feed_reconnecting",
                    "reason": reason,
                    "delay": round(delay, 2),
                    "endpoint": self._endpoint,
                    "failures": self.policy.failures,
                },
            )
            gevent.sleep(delay)

    def stop(self) -> None:
        self._stopped = True
        self._close_ws()

    def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.abort()
                ws.close(timeout=0.1)
            except Exception:
                pass

    # -- one session ----------------------------------------------------------------------

    def _session(self) -> None:
        self.state.sessions += 1
        self._endpoint, self._candidates = None, ()
        self._subscribed = self._delivered = False
        bullet = kucoin.parse_bullet(fetch_bullet(self.api_url, HANDSHAKE_TIMEOUT))
        self._candidates = tuple(server.endpoint for server in bullet.servers)
        index = self.policy.pick(self._candidates)
        server = bullet.server(index)
        self._endpoint = server.endpoint
        connect_id = uuid.uuid4().hex
        ws = websocket.create_connection(
            bullet.connect_url(connect_id, index), timeout=HANDSHAKE_TIMEOUT, enable_multithread=False
        )
        self._ws = ws
        self._expect(ws, kucoin.Welcome, WELCOME_TIMEOUT)
        clock = UpstreamClock(server.ping_interval, server.ping_timeout, self.now(), self.max_session_age)
        wanted = list(self.symbols)
        pending_acks = {frame_id for frame_id, _ in self._subscribe(ws, connect_id, wanted)}
        ack_deadline = self.now() + HANDSHAKE_TIMEOUT
        while not self._stopped:
            now = self.now()
            if pending_acks and now >= ack_deadline:
                raise SessionEnded("no subscribe ack from exchange")
            action, wait = clock.poll(now)
            if action == PING:
                ws.send(kucoin.ping_message(uuid.uuid4().hex))
                clock.ping_sent(now)
                continue
            if action is not None:
                raise SessionEnded(action)
            if pending_acks:
                wait = min(wait, ack_deadline - now)
            event = self._receive(ws, wait)
            if event is None:
                continue
            clock.frame_received(self.now())
            if isinstance(event, Tick):
                self._tick(event)
            elif isinstance(event, kucoin.Pong):
                clock.pong_received(self.now())
                self._delivered = self._subscribed
            elif isinstance(event, kucoin.Ack):
                pending_acks.discard(event.id)
                if not pending_acks:
                    self._mark_connected()
            elif isinstance(event, kucoin.ExchangeError):
                pending_acks.discard(event.id)
                wanted = self._exchange_error(ws, connect_id, event, wanted, pending_acks)
                if not pending_acks and wanted:
                    self._mark_connected()
                ack_deadline = self.now() + HANDSHAKE_TIMEOUT

    def _subscribe(self, ws: websocket.WebSocket, connect_id: str, symbols: list[str]) -> list[tuple[str, str]]:
        frames = kucoin.subscribe_messages(f"sub-{connect_id[:8]}-{uuid.uuid4().hex[:8]}", symbols)
        for _, frame in frames:
            ws.send(frame)
        return frames

    def _exchange_error(
        self,
        ws: websocket.WebSocket,
        connect_id: str,
        event: kucoin.ExchangeError,
        wanted: list[str],
        pending_acks: set[str],
    ) -> list[str]:
        """A "topic not found" marks those symbols unavailable and resubscribes the rest; 401
        (token invalid or expired) and 509 (rate limit) end the session (reconnect.py says what next)."""
        missing = [s for s in event.symbols if s in wanted]
        if event.code == 404 and missing:
            self.state.unavailable.update(missing)
            log.error(
                "exchange has no ticker for %s; marked unavailable",
                ",".join(missing),
                extra={"event": "symbol_unavailable", "symbols": missing},
            )
            remaining = [s for s in wanted if s not in missing]
            # A failed multi-symbol subscribe subscribes nothing: ask again without them.
            if remaining:
                pending_acks.update(frame_id for frame_id, _ in self._subscribe(ws, connect_id, remaining))
            return remaining
        self.metrics.exchange_errors.labels(code=str(event.code)).inc()
        log.warning(
            "exchange error: code=%s %s", event.code, event.text, extra={"event": "exchange_error", "code": event.code}
        )
        if event.code == 401:
            raise SessionEnded(TOKEN_REJECTED)
        if event.code == 509:
            raise SessionEnded(RATE_LIMITED)
        return wanted

    def _mark_connected(self) -> None:
        self._subscribed = True
        if not self.state.connected:
            self.state.subscriptions += 1
            self.state.connected = True
            self.state.last_error = ""
            self.metrics.exchange_connected.set(1)
            log.info(
                "exchange feed connected",
                extra={
                    "event": "feed_connected",
                    "symbols": [s for s in self.symbols if s not in self.state.unavailable],
                },
            )

    def _expect(self, ws: websocket.WebSocket, kind: type, timeout: float) -> None:
        deadline = self.now() + timeout
        while (remaining := deadline - self.now()) > 0:
            event = self._receive(ws, remaining)
            if isinstance(event, kind):
                return
        raise SessionEnded(f"no {kind.__name__.lower()} from exchange within {timeout:g}s")

    def _receive(self, ws: websocket.WebSocket, timeout: float) -> kucoin.Event | None:
        """One frame, parsed; None on timeout or on a dropped (counted) frame."""
        ws.settimeout(max(timeout, 0.001))
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise SessionEnded("exchange closed the connection")
        if opcode != websocket.ABNF.OPCODE_TEXT:
            self.metrics.ticks_dropped.labels(reason="binary_frame").inc()
            return None
        try:
            return kucoin.parse_frame(data)
        except kucoin.FrameError as exc:
            self.metrics.ticks_dropped.labels(reason=exc.reason).inc()
            log.debug("dropped exchange frame: %s", exc)
            return None

    def _tick(self, tick: Tick) -> None:
        if tick.symbol not in self.symbols:
            self.metrics.ticks_dropped.labels(reason="unsubscribed_symbol").inc()
            return
        self.state.last_tick_at = self.now()
        self._delivered = self._subscribed
        self.metrics.exchange_ticks.labels(source="ws").inc()
        self.on_tick(tick)
