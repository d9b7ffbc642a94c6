"""The simulator's vocabulary, without I/O: limits, errors, prices, books, frame encoding."""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

DEFAULT_SYMBOLS = ("PLGR-USDT", "BTC-USDT", "ETH-USDT")
DEFAULT_START_PRICES = {"PLGR-USDT": "0.002700", "BTC-USDT": "67000.1", "ETH-USDT": "3500.00"}
FALLBACK_START_PRICE = "1.0000"
SEQUENCE_START = 1545896668986
MAX_SEQUENCE = 10**18
# How far a sequence reset moves the exchange's clock by default: past the service's 30 s rule.
SEQUENCE_RESET_GAP_MS = 35_000
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
REST_FAIL_MODES = ("500", "502", "badjson")
ERROR_FRAME_CODES = (401, 509, 500)
MAX_FAULT_SECONDS = 3600.0
MAX_LIMIT_MS = 600_000
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


def check_config(
    symbols: Sequence[str], ping_interval_ms: object, ping_timeout_ms: object, start_prices: Mapping[str, str] | None
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The exchange's settings, validated: the symbols as a tuple and the start prices as a
    dict, or a :class:`SimulatorError` naming what is wrong."""
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
    prices = dict(start_prices or {})
    extra = sorted(set(prices) - set(symbols))
    if extra:
        raise SimulatorError(f"start price given for unlisted symbol(s): {', '.join(extra)}")
    return symbols, prices
