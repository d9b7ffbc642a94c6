"""A KuCoin-compatible exchange on loopback, for tests, demos and benchmarks.

``python -m pledge_ws.simulator --port 9000`` serves ``POST /api/v1/bullet-public`` and the
WebSocket endpoint it names, speaking KuCoin's public protocol (welcome, ping/pong,
subscribe/ack, ``/market/ticker:SYMBOL`` messages, errors), plus a JSON control API under
``/_sim/`` that injects the faults a feed must survive: drops, silence, failing bullets,
malformed frames and chosen prices.

Layout: :class:`Exchange` holds every decision (tokens, books, subscriptions, faults) and
imports no gevent, so it can be driven with fake peers; :class:`WsPeer` and
:class:`Ticker` are the gevent I/O on top; :func:`create_simulator_app` wires them into Flask.
"""

from __future__ import annotations

# The CLI process must monkey-patch before socket, ssl and threading are imported; an import
# of this module (tests, an embedding app) never patches anything.
if __name__ == "__main__":  # pragma: no cover
    from gevent import monkey

    monkey.patch_all()

import argparse
import contextlib
import json
import logging
import math
import random
import re
import secrets
import signal
import socket
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.lock
import gevent.queue
from flask import Flask, Response, g, request
from flask_sock import Sock
from gevent.pywsgi import WSGIServer
from simple_websocket import ConnectionClosed, Server

log = logging.getLogger("pledge_ws.simulator")

DEFAULT_SYMBOLS = ("PLGR-USDT", "BTC-USDT", "ETH-USDT")
DEFAULT_START_PRICES = {"PLGR-USDT": "0.002700", "BTC-USDT": "67000.1", "ETH-USDT": "3500.00"}
FALLBACK_START_PRICE = "1.0000"
SEQUENCE_START = 1545896668986
TICKER_PREFIX = "/market/ticker:"
MAX_SYMBOLS_PER_TOPIC = 100
MAX_RATE = 1000.0
MAX_SILENT_SECONDS = 3600.0
MAX_MALFORMED = 1000
MAX_FAIL_BULLETS = 1_000_000
MAX_OUTSTANDING_TOKENS = 10_000
# Frames queued for one connection before it counts as a slow consumer and is cut off.
OUTBOX_FRAMES = 4096
# Most queued frames one connection writes with a single system call.
WRITE_BATCH_FRAMES = 64
# How long a graceful close may take (sending the close frame, hearing the reply).
CLOSE_GRACE_SECONDS = 2.0
BULLET_FAIL_MODES = ("500", "badjson")
DROP_MODES = ("close", "reset")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
MALFORMED_KINDS = (
    "not_json",
    "json_array",
    "missing_data",
    "price_abc",
    "price_negative",
    "price_zero",
    "price_nan",
    "sequence_not_digits",
    "time_string",
    "sequence_out_of_order",
    "unsubscribed_topic",
    "unknown_type",
)

SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")
PRICE_RE = re.compile(r"^[0-9]{1,20}(?:\.[0-9]{1,20})?$")


class SimulatorError(ValueError):
    """Bad simulator configuration or control input; the message says what to fix."""


class UnknownSymbol(SimulatorError):
    """A control request named a symbol the exchange does not list."""


def parse_price(text: object) -> Decimal:
    """A positive fixed-decimal price string, as KuCoin prints them (no sign, no exponent)."""
    if not isinstance(text, str) or PRICE_RE.match(text) is None:
        raise SimulatorError(f"price must be a decimal string like '0.002700', got {text!r}")
    value = Decimal(text)
    if value <= 0:
        raise SimulatorError(f"price must be positive, got {text!r}")
    return value


def parse_start_prices(spec: str) -> dict[str, str]:
    """``PLGR-USDT=0.002700,BTC-USDT=67000.1`` -> ``{symbol: price}``."""
    prices: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        symbol, sep, price = item.partition("=")
        if not sep:
            raise SimulatorError(f"start price {item!r} must look like SYMBOL=PRICE")
        parse_price(price)
        prices[symbol.strip()] = price
    return prices


def encode_text_frame(text: str) -> bytes:
    """One final, unmasked text frame (RFC 6455 section 5.2).

    Server frames are never masked, so one encoding serves every subscriber. Under
    permessage-deflate an uncompressed frame (RSV1 clear) stays valid (RFC 7692 section 6).
    """
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Peer(Protocol):
    """What the exchange needs from one client connection; every method returns at once."""

    connect_id: str
    symbols: set[str]
    last_sent: dict[str, int]

    def send_frame(self, frame: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None: ...


@dataclass(slots=True)
class Book:
    """One symbol's walk state; ``sequence`` is the last one issued."""

    decimals: int
    price: Decimal
    sequence: int
    last_price: str | None = None
    last_time: int | None = None

    @property
    def step(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimals)


@dataclass(frozen=True, slots=True)
class TickInfo:
    symbol: str
    price: str
    sequence: str
    time: int
    text: str


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
        symbols = tuple(symbols)
        if not symbols:
            raise SimulatorError("symbols: give at least one, e.g. PLGR-USDT")
        for symbol in symbols:
            if SYMBOL_RE.match(symbol) is None:
                raise SimulatorError(f"symbols: {symbol!r} is not like PLGR-USDT")
        if len(set(symbols)) != len(symbols):
            raise SimulatorError("symbols: each symbol may appear only once")
        intervals = {"ping_interval_ms": ping_interval_ms, "ping_timeout_ms": ping_timeout_ms}
        for name, value in intervals.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3_600_000:
                raise SimulatorError(f"{name} must be an integer in 1..3600000, got {value!r}")
        start_prices = dict(start_prices or {})
        extra = sorted(set(start_prices) - set(symbols))
        if extra:
            raise SimulatorError(f"start price given for unlisted symbol(s): {', '.join(extra)}")
        self.symbols = symbols
        self.ping_interval_ms = ping_interval_ms
        self.ping_timeout_ms = ping_timeout_ms
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._wall_ms = wall_ms
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
        self._tokens: OrderedDict[str, None] = OrderedDict()
        self._silent_until = 0.0
        self._fail_count = 0
        self._fail_mode = BULLET_FAIL_MODES[0]
        self.connections_total = 0
        self.bullets = 0
        self.pings = 0
        #: Called after the rate changes, so the ticker can re-plan at once.
        self.on_rate_change: Callable[[], None] = lambda: None

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

    def is_silent(self) -> bool:
        return self._monotonic() < self._silent_until

    def silence(self, seconds: float) -> None:
        """Send nothing to anyone for ``seconds`` (0 ends a silence now)."""
        self._silent_until = self._monotonic() + seconds if seconds > 0 else 0.0

    def fail_bullets(self, count: int, mode: str) -> None:
        if mode not in BULLET_FAIL_MODES:
            raise SimulatorError(f"mode must be one of {', '.join(BULLET_FAIL_MODES)}")
        self._fail_count, self._fail_mode = count, mode

    def reset_faults(self) -> None:
        """Back to a healthy exchange; sequences, prices and the rate stay as they are."""
        self._silent_until = 0.0
        self._fail_count = 0

    # -- bullets and tokens ---------------------------------------------------------------

    def take_bullet_failure(self) -> str | None:
        """The failure mode for this bullet request, if one is still scheduled."""
        if self._fail_count <= 0:
            return None
        self._fail_count -= 1
        return self._fail_mode

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(48)
        self._tokens[token] = None
        while len(self._tokens) > MAX_OUTSTANDING_TOKENS:
            self._tokens.popitem(last=False)
        self.bullets += 1
        return token

    def consume_token(self, token: str) -> bool:
        """Tokens are single-use: True once for an issued token, then never again."""
        return self._tokens.pop(token, False) is None

    def bullet_body(self, host: str) -> dict[str, Any]:
        """``POST /api/v1/bullet-public`` as KuCoin answers it, pointing back at ``host``."""
        return {
            "code": "200000",
            "data": {
                "token": self.issue_token(),
                "instanceServers": [
                    {
                        "endpoint": f"ws://{host}/endpoint",
                        "encrypt": False,
                        "protocol": "websocket",
                        "pingInterval": self.ping_interval_ms,
                        "pingTimeout": self.ping_timeout_ms,
                    }
                ],
            },
        }

    # -- connections ----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self._peers)

    def register(self, peer: Peer) -> None:
        self._peers.add(peer)
        self.connections_total += 1

    def unregister(self, peer: Peer) -> None:
        self._peers.discard(peer)
        for subscribers in self._subscribers.values():
            subscribers.discard(peer)

    def send_text(self, peer: Peer, text: str) -> bool:
        """Queue one text frame for ``peer`` unless the exchange is silent."""
        if self.is_silent():
            return False
        peer.send_frame(encode_text_frame(text))
        return True

    def welcome(self, peer: Peer) -> None:
        self.send_text(peer, _dumps({"id": peer.connect_id, "type": "welcome"}))

    def _error(self, peer: Peer, request_id: str, code: int, text: str) -> None:
        frame = {"id": request_id, "type": "error", "code": code, "data": text}
        self.send_text(peer, _dumps(frame))

    def handle_text(self, peer: Peer, message: str | bytes) -> None:
        """Answer one client frame the way KuCoin does.

        Sample::

            {"id":"1545910660739","type":"subscribe","topic":"/market/ticker:BTC-USDT",
             "privateChannel":false,"response":true}
        """
        if isinstance(message, bytes):
            self._error(peer, str(self._wall_ms()), 400, "binary frames are not supported")
            return
        try:
            raw = json.loads(message)
        except (ValueError, RecursionError):
            self._error(peer, str(self._wall_ms()), 400, "message is not valid JSON")
            return
        if not isinstance(raw, dict):
            self._error(peer, str(self._wall_ms()), 400, "message must be a JSON object")
            return
        raw_id = raw.get("id")
        valid_id = isinstance(raw_id, str | int) and not isinstance(raw_id, bool)
        request_id = str(raw_id) if valid_id else str(self._wall_ms())
        kind = raw.get("type")
        if kind == "ping":
            self.pings += 1
            self.send_text(peer, _dumps({"id": request_id, "type": "pong"}))
        elif kind in ("subscribe", "unsubscribe"):
            self._subscription(peer, request_id, kind == "subscribe", raw)
        else:
            self._error(peer, request_id, 400, f"unknown message type: {str(kind)[:40]}")

    def _subscription(self, peer: Peer, request_id: str, on: bool, raw: dict[str, Any]) -> None:
        # All or nothing: one unknown symbol and nothing from this request is applied.
        topic = raw.get("topic")
        if not isinstance(topic, str) or not topic:
            self._error(peer, request_id, 400, "topic is required")
            return
        if not topic.startswith(TICKER_PREFIX):
            self._error(peer, request_id, 404, f"topic {topic[:200]} is not found")
            return
        names = topic[len(TICKER_PREFIX) :].split(",")
        if len(names) > MAX_SYMBOLS_PER_TOPIC:
            text = f"exceed max subscription count limitation of {MAX_SYMBOLS_PER_TOPIC} per time"
            self._error(peer, request_id, 400, text)
            return
        for name in names:
            if name not in self._books:
                self._error(peer, request_id, 404, f"topic {TICKER_PREFIX}{name[:40]} is not found")
                return
        for name in names:
            if on:
                peer.symbols.add(name)
                if peer in self._peers:
                    self._subscribers[name].add(peer)
            else:
                peer.symbols.discard(name)
                self._subscribers[name].discard(peer)
        if raw.get("response") is True:
            self.send_text(peer, _dumps({"id": request_id, "type": "ack"}))

    # -- ticks ----------------------------------------------------------------------------

    def _walk(self, book: Book) -> str:
        drift = Decimal(self._rng.gauss(0.0, self._volatility))
        price = (book.price * (1 + drift)).quantize(book.step, rounding=ROUND_HALF_EVEN)
        return format(max(price, book.step), "f")

    def _tick_data(self, book: Book, price: str, sequence: str, ts: object) -> dict[str, Any]:
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
        ts = self._wall_ms()
        book.last_price, book.last_time = price, ts
        message = {
            "type": "message",
            "topic": TICKER_PREFIX + symbol,
            "subject": "trade.ticker",
            "data": self._tick_data(book, price, str(book.sequence), ts),
        }
        text = _dumps(message)
        if not self.is_silent():
            frame = encode_text_frame(text)
            for peer in tuple(self._subscribers[symbol]):
                peer.last_sent[symbol] = book.sequence
                peer.send_frame(frame)
        return TickInfo(symbol, price, str(book.sequence), ts, text)

    def tick_all(self) -> None:
        for symbol in self.symbols:
            self.tick(symbol)

    # -- faults on open connections -------------------------------------------------------

    def drop_all(self, mode: str) -> int:
        """Close every open connection now: a close frame, or a TCP reset without one."""
        if mode not in DROP_MODES:
            raise SimulatorError(f"mode must be one of {', '.join(DROP_MODES)}")
        peers = tuple(self._peers)
        for peer in peers:
            if mode == "reset":
                peer.abort()
            else:
                peer.close(CLOSE_GOING_AWAY, "dropped by simulator")
        return len(peers)

    def malformed_text(self, peer: Peer, kind: str) -> str:
        """One bad frame of ``kind`` for ``peer``; builds text only, never moves a book.

        Frames that break one field keep every other field plausible (next sequence, current
        price), so a consumer is tested on exactly that one fault.
        """
        symbol = min(peer.symbols) if peer.symbols else self.symbols[0]
        if kind == "unsubscribed_topic":
            others = [s for s in self.symbols if s not in peer.symbols]
            symbol = others[0] if others else "NOPE-USDT"
        book = self._books.get(symbol) or Book(4, Decimal("1.0000"), SEQUENCE_START - 1)
        price = format(book.price, "f")
        sequence: str = str(book.sequence + 1)
        ts: object = self._wall_ms()
        if kind == "not_json":
            return 'this is not json {"type":"message"'
        if kind == "json_array":
            return _dumps([{"type": "message", "topic": TICKER_PREFIX + symbol}])
        if kind == "unknown_type":
            return _dumps({"id": "sim", "type": "surprise", "data": {"hello": "world"}})
        if kind == "missing_data":
            topic = TICKER_PREFIX + symbol
            return _dumps({"type": "message", "topic": topic, "subject": "trade.ticker"})
        if kind in ("price_abc", "price_negative", "price_zero", "price_nan"):
            price = {"price_abc": "abc", "price_negative": "-1", "price_zero": "0"}.get(kind, "NaN")
        elif kind == "sequence_not_digits":
            sequence = "12a"
        elif kind == "time_string":
            ts = "x"
        elif kind == "sequence_out_of_order":
            sequence = str(peer.last_sent.get(symbol, book.sequence) - 1)
            price = format(book.price + 7 * book.step, "f")
        elif kind != "unsubscribed_topic":
            raise SimulatorError(f"kind must be one of {', '.join(MALFORMED_KINDS)}")
        message = {
            "type": "message",
            "topic": TICKER_PREFIX + symbol,
            "subject": "trade.ticker",
            "data": self._tick_data(book, price, sequence, ts),
        }
        return _dumps(message)

    def send_malformed(self, count: int, kinds: Sequence[str] = MALFORMED_KINDS) -> int:
        """Send ``count`` bad frames to every open connection, cycling through ``kinds``."""
        unknown = [kind for kind in kinds if kind not in MALFORMED_KINDS]
        if not kinds or unknown:
            raise SimulatorError(f"kinds must be drawn from {', '.join(MALFORMED_KINDS)}")
        sent = 0
        for peer in tuple(self._peers):
            for index in range(count):
                sent += self.send_text(peer, self.malformed_text(peer, kinds[index % len(kinds)]))
        return sent

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
        silent_ms = max(0, math.ceil((self._silent_until - self._monotonic()) * 1000))
        return {
            "connections": self.connections,
            "connections_total": self.connections_total,
            "bullets": self.bullets,
            "rate": self._rate,
            "silent": self.is_silent(),
            "silent_remaining_ms": silent_ms,
            "fail_bullet": {"count": self._fail_count, "mode": self._fail_mode},
            "symbols": list(self.symbols),
            "subscribed": {symbol: len(peers) for symbol, peers in self._subscribers.items()},
            "last": last,
            "pings": self.pings,
        }


class Ticker:
    """Emits ``exchange.rate`` ticks per second per symbol on monotonic deadlines.

    Deadlines advance by exactly one period, so sleep jitter does not accumulate; after
    falling more than a second behind the schedule restarts instead of bursting.
    """

    def __init__(self, exchange: Exchange, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._exchange = exchange
        self._monotonic = monotonic
        self._wake = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self._greenlet is None:
            self._exchange.on_rate_change = self._wake.set
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _run(self) -> None:
        next_at: float | None = None
        while True:
            rate = self._exchange.rate
            if rate <= 0:
                self._wake.wait()
                self._wake.clear()
                next_at = None
                continue
            period = 1.0 / rate
            now = self._monotonic()
            if next_at is None:
                next_at = now + period
            if next_at > now and self._wake.wait(next_at - now):
                self._wake.clear()  # the rate changed: plan afresh from now
                next_at = None
                continue
            try:
                self._exchange.tick_all()
            except Exception:  # one bad tick must not stop the market
                log.exception("tick failed")
            next_at += period
            if self._monotonic() - next_at > 1.0:
                next_at = None


class _GatedSocket:
    """Stands in for simple-websocket's socket so its own writes (pongs to protocol pings,
    close frames) share our write lock and respect silence."""

    def __init__(self, peer: WsPeer, sock: socket.socket) -> None:
        self._peer = peer
        self._sock = sock

    def send(self, data: bytes) -> int:
        self._peer.write(data, control=True)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class WsPeer:
    """One ``/endpoint`` connection: an outbox drained by its own writer greenlet, so a
    slow client never stalls the ticker; a client that lets the outbox fill is cut off."""

    def __init__(
        self,
        ws: Server,
        exchange: Exchange,
        connect_id: str,
        outbox_frames: int = OUTBOX_FRAMES,
    ) -> None:
        self.connect_id = connect_id
        self.symbols: set[str] = set()
        self.last_sent: dict[str, int] = {}
        self.closing = False
        self._aborted = False
        self._ws = ws
        self._exchange = exchange
        self._sock: socket.socket = ws.sock
        self._lock = gevent.lock.Semaphore()
        self._outbox: gevent.queue.Queue = gevent.queue.Queue(maxsize=outbox_frames)
        ws.sock = _GatedSocket(self, ws.sock)
        self._writer = gevent.spawn(self._drain)

    def send_frame(self, frame: bytes) -> None:
        if self.closing:
            return
        try:
            self._outbox.put_nowait(frame)
        except gevent.queue.Full:
            log.warning("connection %s is not reading; cutting it off", self.connect_id)
            self.abort()

    def write(self, data: bytes, *, control: bool = False) -> bool:
        """Write whole frames under one lock; False once closing stops data frames."""
        with self._lock:
            if self.closing and not control:
                return False
            if self.closing or not self._exchange.is_silent():
                self._sock.sendall(data)
        return True

    def _drain(self) -> None:
        # Whatever piled up while we were writing goes out in one system call.
        outbox = self._outbox
        try:
            while True:
                frames = [outbox.get()]
                while len(frames) < WRITE_BATCH_FRAMES and not outbox.empty():
                    frames.append(outbox.get_nowait())
                if not self.write(b"".join(frames)):
                    return
        except OSError:
            self.abort()

    def close(self, code: int, reason: str) -> None:
        gevent.spawn(self.close_now, code, reason)

    def close_now(self, code: int, reason: str) -> None:
        """Send a close frame (after any frame being written) and stop; abort if stuck."""
        if self.closing:
            return
        self.closing = True
        try:
            with gevent.Timeout(CLOSE_GRACE_SECONDS):
                self._ws.close(reason=code, message=reason)
        except ConnectionClosed:
            pass
        except (OSError, gevent.Timeout):
            self.abort()
        self._writer.kill(block=False)
        self._ws.event.set()  # wake the handler blocked in receive()

    def abort(self) -> None:
        """Drop the TCP connection with a reset: no close frame, no FIN."""
        if self._aborted:
            return
        self._aborted = self.closing = True
        self._ws.connected = False
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._sock.close()  # the last descriptor goes when the handler returns
        if gevent.getcurrent() is not self._writer:
            self._writer.kill(block=False)
        self._ws.event.set()

    def finish(self, environ: Mapping[str, Any]) -> None:
        """After the session: let the client's close reply arrive, then end the HTTP
        connection so gevent's server does not read the socket as a new request."""
        self.closing = True
        self._writer.kill(block=False)
        self._ws.thread.join(timeout=CLOSE_GRACE_SECONDS)
        self._sock.close()
        # gevent hands an upgrade request the connection's own reader as ``wsgi.input``.
        stream = environ.get("wsgi.input")
        rfile = getattr(stream, "rfile", stream)
        if rfile is not None and hasattr(rfile, "close"):
            rfile.close()


def _serve_peer(ws: Server, peer: WsPeer, exchange: Exchange) -> None:
    """Read client frames until the connection ends, enforcing KuCoin's idle rule."""
    last_seen = time.monotonic()
    while not peer.closing:
        remaining = last_seen + exchange.idle_seconds - time.monotonic()
        if remaining <= 0:
            log.info("connection %s sent nothing for %.1fs", peer.connect_id, exchange.idle_seconds)
            peer.close_now(CLOSE_POLICY_VIOLATION, "ping timeout")
            return
        message = ws.receive(timeout=remaining)
        if message is None:
            continue
        last_seen = time.monotonic()
        exchange.handle_text(peer, message)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(body: object, status: int = 200) -> Response:
    return Response(_dumps(body), status=status, mimetype="application/json")


def _body() -> dict[str, Any]:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _BadRequest(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest(400, "body must be a JSON object")
    return body


def _number(body: Mapping[str, Any], key: str, low: float, high: float, *, integer: bool) -> Any:
    value = body.get(key)
    kinds = int if integer else int | float
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise _BadRequest(400, f"{key} must be {kind} in {low:g}..{high:g}, got {value!r}")
    return value


def _choice(body: Mapping[str, Any], key: str, choices: Iterable[str], default: str) -> str:
    value = body.get(key, default)
    choices = tuple(choices)
    if value not in choices:
        raise _BadRequest(400, f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def create_simulator_app(
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    rate: float = 1.0,
    ping_interval_ms: int = 18000,
    ping_timeout_ms: int = 10000,
    *,
    start_prices: Mapping[str, str] | None = None,
    seed: int | None = None,
    exchange: Exchange | None = None,
    autostart: bool = True,
) -> Flask:
    """The simulator as a Flask app; serve it with gevent's WSGIServer (see :func:`serve`).

    The exchange is at ``app.extensions["pledge_ws.simulator"]`` and the ticker at
    ``app.extensions["pledge_ws.simulator.ticker"]``; ``autostart=False`` leaves the ticker
    stopped for tests that want to drive ticks by hand.
    """
    if exchange is None:
        exchange = Exchange(
            symbols,
            rate=rate,
            ping_interval_ms=ping_interval_ms,
            ping_timeout_ms=ping_timeout_ms,
            start_prices=start_prices,
            rng=random.Random(seed),
        )
    ticker = Ticker(exchange)
    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": 1 << 16}
    app.extensions["pledge_ws.simulator"] = exchange
    app.extensions["pledge_ws.simulator.ticker"] = ticker
    sock = Sock(app)

    @app.errorhandler(_BadRequest)
    def _bad_request(exc: _BadRequest) -> Response:
        return _json({"error": str(exc)}, exc.status)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Response:
        return _json({"error": f"no route {request.method} {request.path}"}, 404)

    @app.errorhandler(405)
    def _not_allowed(_exc: Exception) -> Response:
        return _json({"error": f"{request.method} is not allowed on {request.path}"}, 405)

    @app.post("/api/v1/bullet-public")
    def bullet() -> Response:
        failure = exchange.take_bullet_failure()
        if failure == "500":
            return _json({"code": "500000", "msg": "Internal Server Error"}, 500)
        if failure == "badjson":
            return Response('{"code":"200000","data":{"token":', mimetype="application/json")
        return _json(exchange.bullet_body(request.host))

    @app.before_request
    def _check_token() -> Response | None:
        # Refuse before the upgrade, so a bad or reused token is a plain HTTP 401.
        if request.path != "/endpoint":
            return None
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _json({"code": "400", "msg": "expected a WebSocket upgrade"}, 400)
        if not exchange.consume_token(request.args.get("token", "")):
            return _json({"code": "401", "msg": "token is missing, unknown or already used"}, 401)
        g.connect_id = request.args.get("connectId") or secrets.token_hex(8)
        return None

    @sock.route("/endpoint")
    def endpoint(ws: Server) -> None:
        peer = WsPeer(ws, exchange, g.connect_id)
        exchange.register(peer)
        log.debug("connection %s open", peer.connect_id)
        try:
            exchange.welcome(peer)
            _serve_peer(ws, peer, exchange)
        except ConnectionClosed:
            pass
        finally:
            exchange.unregister(peer)
            peer.finish(request.environ)
            log.debug("connection %s closed", peer.connect_id)

    @app.get("/_sim/state")
    def state() -> Response:
        return _json(exchange.state())

    @app.post("/_sim/drop")
    def drop() -> Response:
        mode = _choice(_body(), "mode", DROP_MODES, "close")
        dropped = exchange.drop_all(mode)
        log.info("dropped %d connection(s) (%s)", dropped, mode)
        return _json({"ok": True, "mode": mode, "dropped": dropped})

    @app.post("/_sim/silent")
    def silent() -> Response:
        seconds = _number(_body(), "seconds", 0, MAX_SILENT_SECONDS, integer=False)
        exchange.silence(seconds)
        log.info("silent for %gs", seconds)
        return _json({"ok": True, "silent": exchange.is_silent(), "seconds": seconds})

    @app.post("/_sim/fail-bullet")
    def fail_bullet() -> Response:
        body = _body()
        count = _number(body, "count", 0, MAX_FAIL_BULLETS, integer=True)
        mode = _choice(body, "mode", BULLET_FAIL_MODES, "500")
        exchange.fail_bullets(count, mode)
        log.info("next %d bullet(s) fail with %s", count, mode)
        return _json({"ok": True, "count": count, "mode": mode})

    @app.post("/_sim/malformed")
    def malformed() -> Response:
        body = _body()
        count = _number(body, "count", 0, MAX_MALFORMED, integer=True)
        kinds = body.get("kinds", list(MALFORMED_KINDS))
        if not isinstance(kinds, list) or not kinds or any(k not in MALFORMED_KINDS for k in kinds):
            raise _BadRequest(400, f"kinds must be a list drawn from {', '.join(MALFORMED_KINDS)}")
        sent = exchange.send_malformed(count, kinds)
        return _json({"ok": True, "sent": sent, "kinds": kinds})

    @app.post("/_sim/price")
    def price() -> Response:
        body = _body()
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or symbol not in exchange.symbols:
            raise _BadRequest(404, f"unknown symbol: {str(symbol)[:40]}")
        try:
            parse_price(body.get("price"))
        except SimulatorError as exc:
            raise _BadRequest(400, str(exc)) from None
        tick = exchange.tick(symbol, body["price"])
        answer = {"symbol": symbol, "price": tick.price, "sequence": tick.sequence}
        return _json({"ok": True, **answer, "time": tick.time})

    @app.post("/_sim/rate")
    def set_rate() -> Response:
        rate_value = _number(_body(), "rate", 0, MAX_RATE, integer=False)
        exchange.set_rate(rate_value)
        log.info("rate %g ticks/s per symbol", rate_value)
        return _json({"ok": True, "rate": exchange.rate})

    @app.post("/_sim/reset")
    def reset() -> Response:
        _body()
        exchange.reset_faults()
        return _json({"ok": True})

    if autostart:
        ticker.start()
    return app


def serve(app: Flask, host: str = "127.0.0.1", port: int = 9000) -> WSGIServer:
    """Bind and start serving ``app`` in this process's gevent hub; returns the server."""
    server = WSGIServer((host, port), app, log=None)
    server.start()
    return server


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pledge_ws.simulator",
        description="A KuCoin-compatible exchange on loopback, with fault injection under /_sim/.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS))
    parser.add_argument("--rate", type=float, default=1.0, help="ticks per second per symbol")
    parser.add_argument("--ping-interval-ms", type=int, default=18000)
    parser.add_argument("--ping-timeout-ms", type=int, default=10000)
    parser.add_argument("--start-price", default="", help="PLGR-USDT=0.002700,BTC-USDT=67000.1")
    parser.add_argument("--seed", type=int, default=None, help="make the random walk repeatable")
    parser.add_argument("--log-level", type=str.upper, default="INFO", choices=LOG_LEVELS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT; print one ``simulator listening on ...`` line when ready."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        app = create_simulator_app(
            [s.strip() for s in args.symbols.split(",") if s.strip()],
            args.rate,
            args.ping_interval_ms,
            args.ping_timeout_ms,
            start_prices=parse_start_prices(args.start_price),
            seed=args.seed,
            autostart=False,
        )
    except SimulatorError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    try:
        server = serve(app, args.host, args.port)
    except OSError as exc:
        print(f"simulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    exchange: Exchange = app.extensions["pledge_ws.simulator"]
    ticker: Ticker = app.extensions["pledge_ws.simulator.ticker"]
    ticker.start()
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"simulator listening on http://{host}:{server.server_port}", flush=True)
    stop.wait()
    ticker.stop()
    server.close()  # no new connections while the open ones say goodbye
    exchange.drop_all("close")
    deadline = time.monotonic() + CLOSE_GRACE_SECONDS + 1
    while exchange.connections and time.monotonic() < deadline:
        gevent.sleep(0.02)
    server.stop(timeout=0)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
