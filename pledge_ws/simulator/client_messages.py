"""What KuCoin answers to one client frame on its WebSocket, as a pure decision.

The exchange (exchange.py) applies the :class:`Answer`: it sends the replies and changes the
peer's subscriptions. Sample client frame::

    {"id":"1545910660739","type":"subscribe","topic":"/market/ticker:BTC-USDT",
     "privateChannel":false,"response":true}
"""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from pledge_ws.simulator.model import MAX_SYMBOLS_PER_TOPIC, TICKER_PREFIX


@dataclass
class Answer:
    """Frames to send back (in order), and the subscription change to apply before them."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    subscribe: tuple[str, ...] = ()
    unsubscribe: tuple[str, ...] = ()
    ping: bool = False


def error_frame(request_id: str, code: int, text: str) -> dict[str, Any]:
    return {"id": request_id, "type": "error", "code": code, "data": text}


def _refused(request_id: str, code: int, text: str) -> Answer:
    return Answer([error_frame(request_id, code, text)])


def answer(message: str | bytes, symbols: Container[str], now_ms: int) -> Answer:
    """The answer to ``message`` on an exchange listing ``symbols`` (ids default to ``now_ms``)."""
    fallback_id = str(now_ms)
    if isinstance(message, bytes):
        return _refused(fallback_id, 400, "binary frames are not supported")
    try:
        raw = json.loads(message)
    except (ValueError, RecursionError):
        return _refused(fallback_id, 400, "message is not valid JSON")
    if not isinstance(raw, dict):
        return _refused(fallback_id, 400, "message must be a JSON object")
    raw_id = raw.get("id")
    valid_id = isinstance(raw_id, str | int) and not isinstance(raw_id, bool)
    request_id = str(raw_id) if valid_id else fallback_id
    kind = raw.get("type")
    if kind == "ping":
        return Answer([{"id": request_id, "type": "pong"}], ping=True)
    if kind in ("subscribe", "unsubscribe"):
        return _subscription(request_id, kind == "subscribe", raw, symbols)
    return _refused(request_id, 400, f"unknown message type: {str(kind)[:40]}")


def _subscription(request_id: str, on: bool, raw: dict[str, Any], symbols: Container[str]) -> Answer:
    # All or nothing: one unknown symbol and nothing from this request is applied.
    topic = raw.get("topic")
    if not isinstance(topic, str) or not topic:
        return _refused(request_id, 400, "topic is required")
    if not topic.startswith(TICKER_PREFIX):
        return _refused(request_id, 404, f"topic {topic[:200]} is not found")
    names = tuple(topic[len(TICKER_PREFIX) :].split(","))
    if len(names) > MAX_SYMBOLS_PER_TOPIC:
        text = f"exceed max subscription count limitation of {MAX_SYMBOLS_PER_TOPIC} per time"
        return _refused(request_id, 400, text)
    for name in names:
        if name not in symbols:
            return _refused(request_id, 404, f"topic {TICKER_PREFIX}{name[:40]} is not found")
    replies = [{"id": request_id, "type": "ack"}] if raw.get("response") is True else []
    return Answer(replies, subscribe=names if on else (), unsubscribe=() if on else names)
