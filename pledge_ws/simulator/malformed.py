"""Malformed exchange frames, one fault each, for testing a consumer's input handling."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from pledge_ws.simulator.model import (
    MALFORMED_KINDS,
    SEQUENCE_START,
    TICKER_PREFIX,
    Book,
    Peer,
    SimulatorError,
    _dumps,
)

if TYPE_CHECKING:
    from pledge_ws.simulator.exchange import Exchange


def malformed_text(exchange: Exchange, peer: Peer, kind: str) -> str:
    """One bad frame of ``kind`` for ``peer``; builds text only, never moves a book.

    Frames that break one field keep every other field plausible (next sequence, current
    price), so a consumer is tested on exactly that one fault.
    """
    symbol = min(peer.symbols) if peer.symbols else exchange.symbols[0]
    if kind == "unsubscribed_topic":
        others = [s for s in exchange.symbols if s not in peer.symbols]
        symbol = others[0] if others else "NOPE-USDT"
    book = exchange.books.get(symbol) or Book(4, Decimal("1.0000"), SEQUENCE_START - 1)
    price = format(book.price, "f")
    sequence: str = str(book.sequence + 1)
    ts: object = exchange.wall_ms()
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
        "data": exchange.tick_data(book, price, sequence, ts),
    }
    return _dumps(message)
