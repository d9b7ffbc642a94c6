"""A KuCoin-compatible exchange on loopback, for tests, demos and benchmarks.

``python -m pledge_ws.simulator --port 9000`` serves ``POST /api/v1/bullet-public``, the
WebSocket endpoint it names (KuCoin's public protocol: welcome, ping/pong, subscribe/ack,
``/market/ticker:SYMBOL`` messages, errors) and ``GET /api/v1/market/orderbook/level1``, which
answers from the same books and sequence space as the ticker. A JSON control API under
``/_sim/`` injects the faults a feed must survive:

| route | body | fault |
|---|---|---|
| ``drop`` | ``mode``: close / reset | every open connection dropped |
| ``silent`` | ``seconds`` | the whole exchange silent: no frames, REST answers 503 |
| ``ws-down`` | ``seconds`` | push servers down: connections reset, upgrades refused (503), REST up |
| ``fail-bullet`` | ``count``, ``mode``: 500 / badjson | the next bullets fail |
| ``rest-limit`` | ``ms`` | REST answers 429 with ``gw-ratelimit-reset`` for ``ms`` |
| ``rest-fail`` | ``count``, ``mode``: 500 / 502 / badjson | the next REST calls fail |
| ``error-frame`` | ``code``: 401 / 509 / 500, ``seconds`` | a ``type:error`` frame now, then after each welcome |
| ``dead-first-server`` | ``on`` | bullets list a dead endpoint first |
| ``malformed`` | ``count``, ``kinds`` | bad ticker frames |
| ``sequence-reset`` | ``symbol``, ``start``, ``gap_ms`` | sequence restarts at ``start``, clock ``gap_ms`` ahead |
| ``price`` / ``rate`` | ``symbol``, ``price`` / ``rate`` | a chosen tick / ticks per second |
| ``reset`` | | every fault off |

One job per module: ``model`` (limits, prices, books, frame encoding, settings checks),
``faults`` (what is broken, pure), ``bullets`` (tokens), ``client_messages`` (the answer to a
client frame, pure), ``exchange`` (books, ticks, subscribers, level-1; no I/O), ``injection``
(faults done to the open connections), ``malformed`` (bad frames), ``peers`` (gevent I/O:
ticker and WebSocket peers), ``app`` (KuCoin's HTTP and WebSocket surface), ``control`` (the
``/_sim/`` API), ``cli``.
Nothing is imported here, so ``python -m`` can monkey-patch before gevent's modules load;
the names below are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Exchange": "exchange",
    "create_simulator_app": "app",
    "serve": "cli",
    "main": "cli",
    "SimulatorError": "model",
    "UnknownSymbol": "model",
    "MALFORMED_KINDS": "model",
    "SEQUENCE_START": "model",
    "parse_price": "model",
    "parse_start_prices": "model",
    "encode_text_frame": "model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pledge_ws.simulator' has no attribute {name!r}")
    return getattr(import_module(f"pledge_ws.simulator.{module}"), name)
