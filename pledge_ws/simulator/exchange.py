"""The exchange's whole state and every protocol decision, without I/O."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pledge_ws.simulator.bullets import DEAD_ENDPOINT, Tokens, bullet_body
from pledge_ws.simulator.client_messages import answer, error_frame
from pledge_ws.simulator.faults import ERROR_TEXTS, Faults
from pledge_ws.simulator.model import (
    DEFAULT_START_PRICES,
    DEFAULT_SYMBOLS,
    FALLBACK_START_PRICE,
    MAX_LIMIT_MS,
    MAX_RATE,
    MAX_SEQUENCE,
    PRICE_RE,
    SEQUENCE_RESET_GAP_MS,
    SEQUENCE_START,
    TICKER_PREFIX,
    Book,
    Peer,
    SimulatorError,
    TickInfo,
    UnknownSymbol,
    _dumps,
    _wall_ms,
    check_config,
    encode_text_frame,
    parse_price,
)

LEVEL1_FIELDS = ("time", "sequence", "price", "size", "bestBid", "bestBidSize", "bestAsk", "bestAskSize")


class Exchange:
    """The exchange's whole state and every protocol decision, without I/O.

    Peers are registered by the WebSocket layer; the exchange only calls their non-blocking
    ``send_frame``/``close``/``abort``, so it can be exercised with plain fake peers. ``now``
    comes from ``monotonic`` and tick times from ``wall_ms``, both injectable.
    """

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        *,
        rate: float = 1.0,
        ping_interval_ms: int = 18000,
        ping_timeout_ms: int = 10000,
        start_prices: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = _wall_ms,
        sequence_start: int = SEQUENCE_START,
        volatility: float = 0.0005,
    ) -> None:
        symbols, start_prices = check_config(symbols, ping_interval_ms, ping_timeout_ms, start_prices)
        self.symbols = symbols
        self.ping_interval_ms = ping_interval_ms
        self.ping_timeout_ms = ping_timeout_ms
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._wall_ms = wall_ms
        self._clock_ahead_ms = 0
        self._volatility = volatility
        self._books: dict[str, Book] = {}
        for symbol in symbols:
            default = DEFAULT_START_PRICES.get(symbol, FALLBACK_START_PRICE)
            text = start_prices.get(symbol) or default
            price = parse_price(text)
            decimals = len(text.partition(".")[2])
            self._books[symbol] = Book(decimals, price, sequence_start - 1)
        self._rate = self._check_rate(rate)
        self._subscribers: dict[str, set[Peer]] = {symbol: set() for symbol in symbols}
        self._peers: set[Peer] = set()
        self.tokens = Tokens()
        self.faults = Faults(monotonic)
        self.rest_polls = 0  # level-1 answers given
        self.rest_calls = 0  # level-1 requests, refused ones included
        self.dead_endpoint_refused = 0
        self.sequence_resets = 0
        self.connections_total = 0
        self.bullets = 0
        self.pings = 0
        #: Called after the rate changes, so the ticker can re-plan at once.
        self.on_rate_change: Callable[[], None] = lambda: None

    @property
    def books(self) -> Mapping[str, Book]:
        return self._books

    def wall_ms(self) -> int:
        """The exchange's clock: wall time, moved ahead by every :meth:`restart_sequence`."""
        return self._wall_ms() + self._clock_ahead_ms

    # -- configuration and faults ---------------------------------------------------------

    @property
    def idle_seconds(self) -> float:
        """KuCoin drops a connection that has not pinged for pingInterval + pingTimeout."""
        return (self.ping_interval_ms + self.ping_timeout_ms) / 1000.0

    @property
    def rate(self) -> float:
        return self._rate

    @staticmethod
    def _check_rate(rate: object) -> float:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
            raise SimulatorError(f"rate must be a number, got {rate!r}")
        if not 0 <= rate <= MAX_RATE:
            raise SimulatorError(f"rate must be in 0..{MAX_RATE:g} ticks per second, got {rate!r}")
        return float(rate)

    def set_rate(self, rate: object) -> None:
        self._rate = self._check_rate(rate)
        self.on_rate_change()

    def restart_sequence(self, symbol: str, start: int = 1, gap_ms: int = SEQUENCE_RESET_GAP_MS) -> None:
        """The exchange restarts ``symbol``'s sequence at ``start`` (its next tick has it), as
        after maintenance: the exchange's clock moves ``gap_ms`` ahead, the maintenance window
        a real reset comes with (the service takes a lower sequence for a restart only when its
        time is at least 30 s past the last tick's: docs/protocol.md, "Order")."""
        book = self._books.get(symbol)
        if book is None:
            raise UnknownSymbol(f"unknown symbol: {symbol}")
        if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= MAX_SEQUENCE:
            raise SimulatorError(f"start must be an integer in 1..{MAX_SEQUENCE}, got {start!r}")
        if isinstance(gap_ms, bool) or not isinstance(gap_ms, int) or not 0 <= gap_ms <= MAX_LIMIT_MS:
            raise SimulatorError(f"gap_ms must be an integer in 0..{MAX_LIMIT_MS}, got {gap_ms!r}")
        book.sequence = start - 1
        self._clock_ahead_ms += gap_ms
        self.sequence_resets += 1

    # -- bullets and tokens ---------------------------------------------------------------

    def bullet_body(self, host: str) -> dict[str, Any]:
        """``POST /api/v1/bullet-public`` as KuCoin answers it, pointing back at ``host``."""
        self.bullets += 1
        paths = (DEAD_ENDPOINT, "/endpoint") if self.faults.dead_first_server else ("/endpoint",)
        return bullet_body(self.tokens.issue(), host, paths, self.ping_interval_ms, self.ping_timeout_ms)

    # -- connections ----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self._peers)

    def peers(self) -> tuple[Peer, ...]:
        """The open connections now (injection.py acts on them)."""
        return tuple(self._peers)

    def register(self, peer: Peer) -> None:
        self._peers.add(peer)
        self.connections_total += 1

    def unregister(self, peer: Peer) -> None:
        self._peers.discard(peer)
        for subscribers in self._subscribers.values():
            subscribers.discard(peer)

    def send_text(self, peer: Peer, text: str) -> bool:
        """Queue one text frame for ``peer`` unless the exchange is silent."""
        if self.faults.is_silent():
            return False
        peer.send_frame(encode_text_frame(text))
        return True

    def welcome(self, peer: Peer) -> None:
        self.send_text(peer, _dumps({"id": peer.connect_id, "type": "welcome"}))
        code = self.faults.connect_error()
        if code is not None:
            self._error(peer, str(self.wall_ms()), code, ERROR_TEXTS.get(code, "error"))

    def _error(self, peer: Peer, request_id: str, code: int, text: str) -> None:
        self.send_text(peer, _dumps(error_frame(request_id, code, text)))

    def handle_text(self, peer: Peer, message: str | bytes) -> None:
        """Answer one client frame the way KuCoin does (client_messages.py decides)."""
        reply = answer(message, self._books, self.wall_ms())
        if reply.ping:
            self.pings += 1
        for name in reply.subscribe:
            peer.symbols.add(name)
            if peer in self._peers:
                self._subscribers[name].add(peer)
        for name in reply.unsubscribe:
            peer.symbols.discard(name)
            self._subscribers[name].discard(peer)
        for frame in reply.replies:
            self.send_text(peer, _dumps(frame))

    # -- ticks ----------------------------------------------------------------------------

    def _walk(self, book: Book) -> str:
        drift = Decimal(self._rng.gauss(0.0, self._volatility))
        price = (book.price * (1 + drift)).quantize(book.step, rounding=ROUND_HALF_EVEN)
        return format(max(price, book.step), "f")

    def tick_data(self, book: Book, price: str, sequence: str, ts: object) -> dict[str, Any]:
        value = Decimal(price) if PRICE_RE.match(price) else book.price
        ask = format(value + book.step, "f")
        bid = format(max(value - book.step, book.step), "f")
        uniform = self._rng.uniform
        return {
            "sequence": sequence,
            "price": price,
            "size": f"{uniform(0.01, 500.0):.4f}",
            "bestAsk": ask,
            "bestAskSize": f"{uniform(0.01, 5000.0):.4f}",
            "bestBid": bid,
            "bestBidSize": f"{uniform(0.01, 5000.0):.4f}",
            "time": ts,
        }

    def tick(self, symbol: str, price: str | None = None) -> TickInfo:
        """Advance ``symbol`` by one tick (walked, or exactly ``price``) and fan it out.

        Encoded once; the same frame bytes go to every subscriber. While silent the price
        and sequence still move, but nothing is sent.
        """
        book = self._books.get(symbol)
        if book is None:
            raise UnknownSymbol(f"unknown symbol: {symbol}")
        if price is None:
            price = self._walk(book)
        book.price = parse_price(price)
        book.sequence += 1
        ts = self.wall_ms()
        book.last_price, book.last_time = price, ts
        message = {
            "type": "message",
            "topic": TICKER_PREFIX + symbol,
            "subject": "trade.ticker",
            "data": self.tick_data(book, price, str(book.sequence), ts),
        }
        text = _dumps(message)
        if not self.faults.is_silent():
            frame = encode_text_frame(text)
            for peer in tuple(self._subscribers[symbol]):
                peer.last_sent[symbol] = book.sequence
                peer.send_frame(frame)
        return TickInfo(symbol, price, str(book.sequence), ts, text)

    def tick_all(self) -> None:
        for symbol in self.symbols:
            self.tick(symbol)

    # -- REST market data -----------------------------------------------------------------

    def level1(self, symbol: str) -> dict[str, Any]:
        """``GET /api/v1/market/orderbook/level1?symbol=S`` as KuCoin answers it: the ticker's
        latest price and sequence (one sequence space with the WebSocket), ``data`` null for
        a symbol it does not list."""
        self.rest_polls += 1
        book = self._books.get(symbol)
        if book is None:
            return {"code": "200000", "data": None}
        price = book.last_price or format(book.price, "f")
        ts = book.last_time if book.last_time is not None else self.wall_ms()
        data = self.tick_data(book, price, str(book.sequence), ts)
        return {"code": "200000", "data": {key: data[key] for key in LEVEL1_FIELDS}}

    # -- reporting ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        last = {}
        for symbol, book in self._books.items():
            if book.last_price is not None:
                last[symbol] = {
                    "price": book.last_price,
                    "sequence": str(book.sequence),
                    "time": book.last_time,
                }
        return {
            **self.faults.state(),
            "connections": self.connections,
            "connections_total": self.connections_total,
            "bullets": self.bullets,
            "rate": self._rate,
            "symbols": list(self.symbols),
            "subscribed": {symbol: len(peers) for symbol, peers in self._subscribers.items()},
            "last": last,
            "pings": self.pings,
            "rest_polls": self.rest_polls,
            "rest_calls": self.rest_calls,
            "dead_endpoint_refused": self.dead_endpoint_refused,
            "sequence_resets": self.sequence_resets,
            "clock_ahead_ms": self._clock_ahead_ms,
        }
