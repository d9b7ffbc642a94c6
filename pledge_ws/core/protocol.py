"""The browser-facing ``/ws`` protocol, without I/O: messages in, frame bytes out.

Server frames are unmasked (RFC 6455 section 5.1), so one encoded price frame is the same
bytes for every subscriber: the hub encodes it once per tick and writes those bytes to each
socket. Frames keep the Go backend's shape: ``{"code":0,"data":"<price>"}`` plus fields.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection
from dataclasses import dataclass

from pledge_ws.core.ticks import Tick

PING_SPELLINGS = frozenset({"ping", '"ping"', "'ping'"})
MAX_SYMBOLS_PER_REQUEST = 400

# RFC 6455 section 7.4.1 close codes.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013

# The 1001 close on shutdown carries a reconnect hint in its reason: clients spread their
# reconnects uniformly over this window instead of all landing on the other workers at once.
RECONNECT_WINDOW_MS = 5000
SHUTDOWN_REASON = f"server shutting down; reconnect_window_ms={RECONNECT_WINDOW_MS}"


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Subscribe:
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Invalid:
    """Answered with a code -1 frame carrying ``reason``; the connection stays open."""

    reason: str


ClientMessage = Ping | Subscribe | Unsubscribe | Invalid


def _dumps(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode()


def price_payload(tick: Tick) -> bytes:
    return _dumps({"code": 0, "data": tick.price, "symbol": tick.symbol, "seq": tick.sequence, "ts": tick.ts})


PONG_PAYLOAD = _dumps({"code": 1, "data": "pong"})


def recovered_payload(symbol: str, count: int) -> bytes:
    """Code 2: the next ``count`` prices of ``symbol`` are the ones the client missed."""
    return _dumps({"code": 2, "data": "recovered", "symbol": symbol, "count": count})


def not_recovered_payload(symbol: str) -> bytes:
    """Code 2: the gap cannot be proven closed; the snapshot of ``symbol`` follows instead."""
    return _dumps({"code": 2, "data": "not recovered", "symbol": symbol})


def error_payload(reason: str) -> bytes:
    return _dumps({"code": -1, "data": reason})


def _frame(opcode: int, payload: bytes) -> bytes:
    # RFC 6455 section 5.2: FIN bit, opcode, then a 7-, 16- or 64-bit length; no mask.
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def text_frame(payload: bytes) -> bytes:
    return _frame(0x1, payload)


def close_frame(code: int, reason: str = "") -> bytes:
    # Control frame payloads are at most 125 bytes (section 5.5): 2 for the code.
    encoded = reason.encode()[:123]
    return _frame(0x8, struct.pack("!H", code) + encoded)


PONG_FRAME = text_frame(PONG_PAYLOAD)

# The frame a browser sends every few seconds: FIN + text, masked, 4-byte payload "ping".
_PING_HEADER = b"\x81\x84"
_PING = b"ping"


def is_ping_frame(data: bytes) -> bool:
    """True when ``data`` is exactly one masked, unfragmented text frame saying ``ping``.

    The session answers that frame without wsproto's general parser (the commonest frame by
    far at 10,000 clients pinging every 5 s); anything else, including the quoted spellings,
    takes the general path. RSV bits set, an unmasked frame or any other byte fail the test.
    """
    if len(data) != 10 or data[:2] != _PING_HEADER:
        return False
    mask = data[2:6]
    return bytes(b ^ mask[i] for i, b in enumerate(data[6:10])) == _PING


def normalize_symbols(raw: object, configured: Collection[str]) -> tuple[str, ...] | Invalid:
    """Symbols a client asked for, checked against the configured ones (case-insensitive)."""
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not raw:
        return Invalid("symbols must be a non-empty list of strings")
    if len(raw) > MAX_SYMBOLS_PER_REQUEST:
        return Invalid(f"at most {MAX_SYMBOLS_PER_REQUEST} symbols per request")
    symbols: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            return Invalid("symbols must be a non-empty list of strings")
        symbol = item.strip().upper()
        if symbol not in configured:
            return Invalid(f"unknown symbol: {item.strip()[:40]}")
        if symbol not in symbols:
            symbols.append(symbol)
    return tuple(symbols)


def parse_client_message(text: str, configured: Collection[str]) -> ClientMessage:
    """Classify one text frame from a browser. Never raises."""
    stripped = text.strip()
    if stripped in PING_SPELLINGS:
        return Ping()
    if not stripped.startswith("{"):
        return Invalid("unsupported message")
    try:
        raw = json.loads(stripped)
    except (ValueError, RecursionError):
        return Invalid("malformed JSON")
    if not isinstance(raw, dict):
        return Invalid("unsupported message")
    op = raw.get("op")
    if op not in ("subscribe", "unsubscribe"):
        return Invalid("unsupported op")
    symbols = normalize_symbols(raw.get("symbols"), configured)
    if isinstance(symbols, Invalid):
        return symbols
    return Subscribe(symbols) if op == "subscribe" else Unsubscribe(symbols)
