"""The simulator's exchange without I/O (simulator/exchange.py), driven with a fake peer."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from pledge_ws.simulator import SEQUENCE_START, Exchange, SimulatorError


@dataclass(eq=False)
class FakePeer:
    connect_id: str = "fake"
    symbols: set[str] = field(default_factory=set)
    last_sent: dict[str, int] = field(default_factory=dict)
    frames: list[bytes] = field(default_factory=list)
    closed: list[tuple[int, str]] = field(default_factory=list)
    aborted: bool = False

    def send_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))

    def abort(self) -> None:
        self.aborted = True

    def texts(self) -> list[Any]:
        # Unmasked text frames under 126 bytes carry a 2-byte header, longer ones 4.
        return [json.loads(f[2:] if f[1] < 126 else f[4:]) for f in self.frames]


def subscribe_text(request_id: str, symbols: str) -> str:
    return json.dumps({"id": request_id, "type": "subscribe", "topic": "/market/ticker:" + symbols})


def make_exchange(now: list[float]) -> Exchange:
    return Exchange(
        ("PLGR-USDT", "BTC-USDT"),
        rng=random.Random(1),
        monotonic=lambda: now[0],
        wall_ms=lambda: 1_700_000,
    )


def test_exchange_subscription_is_all_or_nothing() -> None:
    exchange = make_exchange([0.0])
    peer = FakePeer()
    exchange.register(peer)
    exchange.handle_text(peer, subscribe_text("1", "PLGR-USDT,NOPE-X"))
    assert peer.symbols == set()
    assert peer.texts()[-1]["code"] == 404
    exchange.handle_text(peer, subscribe_text("2", "PLGR-USDT"))
    assert peer.symbols == {"PLGR-USDT"}
    assert len(peer.frames) == 1  # no ack without "response": true


def test_exchange_silence_moves_prices_but_sends_nothing() -> None:
    now = [100.0]
    exchange = make_exchange(now)
    peer = FakePeer(symbols=set())
    exchange.register(peer)
    exchange.handle_text(peer, subscribe_text("s", "PLGR-USDT"))
    exchange.faults.silence(5)
    first = exchange.tick("PLGR-USDT", "0.002800")
    assert peer.frames == [] and exchange.state()["last"]["PLGR-USDT"]["price"] == "0.002800"
    now[0] += 5.0
    second = exchange.tick("PLGR-USDT")
    assert int(second.sequence) == int(first.sequence) + 1 == SEQUENCE_START + 1
    assert [t["data"]["sequence"] for t in peer.texts()] == [second.sequence]


def test_exchange_rejects_bad_configuration() -> None:
    with pytest.raises(SimulatorError):
        Exchange(())
    with pytest.raises(SimulatorError):
        Exchange(("PLGR-USDT",), start_prices={"BTC-USDT": "1.0"})
    with pytest.raises(SimulatorError):
        Exchange(("PLGR-USDT",), rate=float("nan"))


def test_exchange_restarts_a_sequence_after_a_maintenance_gap() -> None:
    exchange = make_exchange([0.0])
    before = exchange.tick("PLGR-USDT", "0.002800")
    other = exchange.tick("BTC-USDT")
    exchange.restart_sequence("PLGR-USDT", start=7, gap_ms=40_000)
    after = exchange.tick("PLGR-USDT")
    assert after.sequence == "7" and after.time == before.time + 40_000
    assert exchange.level1("PLGR-USDT")["data"]["sequence"] == "7"  # REST follows the same space
    assert int(exchange.tick("BTC-USDT").sequence) == int(other.sequence) + 1  # others go on
    assert exchange.state()["sequence_resets"] == 1
    with pytest.raises(SimulatorError):
        exchange.restart_sequence("NOPE-X")
