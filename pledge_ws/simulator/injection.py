"""Faults injected into the connections open now: drop them, send them bad frames or error
frames. (Faults that last, such as silence or a WebSocket side that is down, are faults.py.)"""

from __future__ import annotations

from collections.abc import Sequence

from pledge_ws.simulator.client_messages import error_frame
from pledge_ws.simulator.exchange import Exchange
from pledge_ws.simulator.faults import ERROR_TEXTS
from pledge_ws.simulator.malformed import malformed_text
from pledge_ws.simulator.model import CLOSE_GOING_AWAY, DROP_MODES, MALFORMED_KINDS, SimulatorError, _dumps


def drop_all(exchange: Exchange, mode: str) -> int:
    """Close every open connection now: a close frame, or a TCP reset without one."""
    if mode not in DROP_MODES:
        raise SimulatorError(f"mode must be one of {', '.join(DROP_MODES)}")
    peers = exchange.peers()
    for peer in peers:
        if mode == "reset":
            peer.abort()
        else:
            peer.close(CLOSE_GOING_AWAY, "dropped by simulator")
    return len(peers)


def send_malformed(exchange: Exchange, count: int, kinds: Sequence[str] = MALFORMED_KINDS) -> int:
    """Send ``count`` bad frames to every open connection, cycling through ``kinds``."""
    unknown = [kind for kind in kinds if kind not in MALFORMED_KINDS]
    if not kinds or unknown:
        raise SimulatorError(f"kinds must be drawn from {', '.join(MALFORMED_KINDS)}")
    sent = 0
    for peer in exchange.peers():
        for index in range(count):
            sent += exchange.send_text(peer, malformed_text(exchange, peer, kinds[index % len(kinds)]))
    return sent


def send_error(exchange: Exchange, code: int) -> int:
    """A ``type:error`` frame with ``code`` to every open connection now."""
    peers = exchange.peers()
    for peer in peers:
        frame = error_frame(str(exchange.wall_ms()), code, ERROR_TEXTS.get(code, "error"))
        exchange.send_text(peer, _dumps(frame))
    return len(peers)
