"""KuCoin's public WebSocket protocol, without I/O.

Parses the bullet (token) response and every frame the exchange sends, and builds the
frames we send. The I/O loop in :mod:`pledge_ws.exchange.feed` moves bytes; every decision about
what those bytes mean is made here, so it is tested with literal frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from pledge_ws.core.ticks import RejectedInput, Tick, TickError, make_tick

TICKER_PREFIX = "/market/ticker:"
MAX_SYMBOLS_PER_SUBSCRIBE = 100
MAX_FRAME_CHARS = 64 * 1024
MAX_INSTANCE_SERVERS = 16
MAX_LEVEL1_CHARS = 16 * 1024
# KuCoin closes every connection after 24 hours; reconnect a little before that on our terms.
MAX_SESSION_SECONDS = 23.5 * 3600


class BulletError(ValueError):
    """The bullet endpoint answered something we cannot connect with."""


class FrameError(RejectedInput):
    """An exchange frame is malformed or oversized."""


@dataclass(frozen=True, slots=True)
class Server:
    """One ``instanceServers`` entry: a candidate endpoint and its ping timing."""

    endpoint: str
    ping_interval: float
    ping_timeout: float


@dataclass(frozen=True, slots=True)
class Bullet:
    """Where and how to connect: one token is good for one connection, on any of ``servers``."""

    token: str
    servers: tuple[Server, ...]

    def server(self, attempt: int) -> Server:
        """The candidate for the ``attempt``-th connect: a failed entry is skipped next time."""
        return self.servers[attempt % len(self.servers)]

    def connect_url(self, connect_id: str, attempt: int = 0) -> str:
        query = urlencode({"token": self.token, "connectId": connect_id})
        return f"{self.server(attempt).endpoint}?{query}"


@dataclass(frozen=True, slots=True)
class Welcome:
    id: str


@dataclass(frozen=True, slots=True)
class Pong:
    id: str


@dataclass(frozen=True, slots=True)
class Ack:
    id: str


@dataclass(frozen=True, slots=True)
class ExchangeError:
    """``{"type":"error"}``; ``symbols`` holds those named by a "topic ... not found"."""

    id: str
    code: int | None
    text: str
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Other:
    """A well-formed frame we have no use for (notices, other subjects)."""

    type: str


Event = Welcome | Pong | Ack | ExchangeError | Tick | Other


def parse_bullet(body: str | bytes) -> Bullet:
    """Parse ``POST /api/v1/bullet-public``; every ``instanceServers`` entry is a candidate.

    Sample::

        {"code":"200000","data":{"token":"2neAiu...","instanceServers":[{
         "endpoint":"wss://ws-api-spot.kucoin.com/","encrypt":true,"protocol":"websocket",
         "pingInterval":18000,"pingTimeout":10000}]}}
    """
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        raise BulletError("bullet response is not JSON") from None
    if not isinstance(raw, dict):
        raise BulletError("bullet response is not a JSON object")
    if raw.get("code") != "200000":
        raise BulletError(f"bullet refused: code={raw.get('code')!r} msg={str(raw.get('msg'))[:200]!r}")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise BulletError("bullet response has no data object")
    token = data.get("token")
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise BulletError("bullet response has no token")
    entries = data.get("instanceServers")
    if not isinstance(entries, list) or not entries:
        raise BulletError("bullet response has no instanceServers")
    servers = tuple(_parse_server(entry) for entry in entries[:MAX_INSTANCE_SERVERS])
    return Bullet(token, servers)


def _parse_server(server: object) -> Server:
    if not isinstance(server, dict):
        raise BulletError("bullet instanceServers entry is not an object")
    endpoint = server.get("endpoint")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("ws", "wss"):
        raise BulletError(f"bullet endpoint is not a ws:// or wss:// URL: {str(endpoint)[:200]!r}")
    interval = server.get("pingInterval", 18000)
    timeout = server.get("pingTimeout", 10000)
    for name, value in (("pingInterval", interval), ("pingTimeout", timeout)):
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 600_000:
            raise BulletError(f"bullet {name} out of range: {value!r}")
    return Server(endpoint, interval / 1000.0, timeout / 1000.0)


def ping_message(request_id: str) -> str:
    """KuCoin ignores protocol-level pings; it wants this JSON ping instead."""
    return json.dumps({"id": request_id, "type": "ping"})


def subscribe_messages(request_id: str, symbols: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """(id, frame) pairs subscribing every symbol, at most 100 per topic as KuCoin allows."""
    frames = []
    for start in range(0, len(symbols), MAX_SYMBOLS_PER_SUBSCRIBE):
        chunk = symbols[start : start + MAX_SYMBOLS_PER_SUBSCRIBE]
        frame_id = f"{request_id}-{start // MAX_SYMBOLS_PER_SUBSCRIBE}"
        body = {
            "id": frame_id,
            "type": "subscribe",
            "topic": TICKER_PREFIX + ",".join(chunk),
            "privateChannel": False,
            "response": True,
        }
        frames.append((frame_id, json.dumps(body)))
    return frames


def _symbols_in_error(text: str) -> tuple[str, ...]:
    # "topic /market/ticker:FOO-BAR is not found"
    start = text.find(TICKER_PREFIX)
    if start < 0 or "not found" not in text:
        return ()
    tail = text[start + len(TICKER_PREFIX) :].split()
    return tuple(s for s in tail[0].split(",") if s) if tail else ()


def _parse_tick(raw: dict[str, object]) -> Tick:
    topic = raw.get("topic")
    if not isinstance(topic, str) or not topic.startswith(TICKER_PREFIX):
        raise FrameError("bad_topic", repr(topic)[:60])
    symbol = topic[len(TICKER_PREFIX) :]
    data = raw.get("data")
    if not isinstance(data, dict):
        raise FrameError("bad_data")
    ts = data.get("time", data.get("Time"))
    try:
        return make_tick(symbol, data.get("price"), data.get("sequence"), ts)
    except TickError as exc:
        raise FrameError(exc.reason, str(exc)) from None


def parse_frame(text: str | bytes) -> Event:
    """Turn one exchange text frame into an event, or raise :class:`FrameError`.

    Ticker sample::

        {"type":"message","topic":"/market/ticker:PLGR-USDT","subject":"trade.ticker",
         "data":{"sequence":"1545896668986","price":"0.002700","size":"12.5",
                 "bestAsk":"0.0028","bestAskSize":"1","bestBid":"0.0027","bestBidSize":"2",
                 "time":1704873323416}}
    """
    if len(text) > MAX_FRAME_CHARS:
        raise FrameError("oversized", str(len(text)))
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError("bad_json") from None
    if not isinstance(raw, dict):
        raise FrameError("bad_shape", type(raw).__name__)
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise FrameError("bad_type", repr(kind)[:40])
    frame_id = raw.get("id")
    frame_id = frame_id if isinstance(frame_id, str) else str(frame_id) if frame_id is not None else ""
    if kind == "message":
        return _parse_tick(raw)
    if kind == "welcome":
        return Welcome(frame_id)
    if kind == "pong":
        return Pong(frame_id)
    if kind == "ack":
        return Ack(frame_id)
    if kind == "error":
        code = raw.get("code")
        data = raw.get("data")
        text_value = data if isinstance(data, str) else json.dumps(data)[:500]
        code_value = code if isinstance(code, int) and not isinstance(code, bool) else None
        if isinstance(code, str) and code.isdigit():
            code_value = int(code)
        return ExchangeError(frame_id, code_value, text_value, _symbols_in_error(text_value))
    return Other(kind[:40])


class Level1Error(RejectedInput):
    """A level-1 REST answer is malformed, refused, or has no data."""


def parse_level1(symbol: str, body: str | bytes) -> Tick:
    """Parse ``GET /api/v1/market/orderbook/level1?symbol=S`` into a tick of ``symbol``.

    The answer names no symbol (the request did) and ``data`` is null for one the exchange
    does not list. Sample::

        {"code":"200000","data":{"time":1704873323416,"sequence":"1545896668986",
         "price":"0.002700","size":"12.5","bestBid":"0.0027","bestBidSize":"2",
         "bestAsk":"0.0028","bestAskSize":"1"}}
    """
    if len(body) > MAX_LEVEL1_CHARS:
        raise Level1Error("oversized", str(len(body)))
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        raise Level1Error("bad_json") from None
    if not isinstance(raw, dict):
        raise Level1Error("bad_shape", type(raw).__name__)
    if raw.get("code") != "200000":
        raise Level1Error("refused", f"code={str(raw.get('code'))[:20]!r} msg={str(raw.get('msg'))[:100]!r}")
    data = raw.get("data")
    if data is None:
        raise Level1Error("no_data", symbol)
    if not isinstance(data, dict):
        raise Level1Error("bad_data")
    try:
        return make_tick(symbol, data.get("price"), data.get("sequence"), data.get("time"), source="rest")
    except TickError as exc:
        raise Level1Error(exc.reason, str(exc)) from None
