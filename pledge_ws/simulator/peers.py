"""The simulator's gevent I/O: the ticker's clock and one greenlet-driven WebSocket peer each.

A slow client never stalls the ticker: each peer has an outbox drained by its own writer
greenlet, and a client that lets the outbox fill is cut off.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.queue
from simple_websocket import ConnectionClosed, Server

from pledge_ws.simulator.exchange import Exchange
from pledge_ws.simulator.model import (
    CLOSE_GRACE_SECONDS,
    CLOSE_POLICY_VIOLATION,
    OUTBOX_FRAMES,
    WRITE_BATCH_FRAMES,
)

log = logging.getLogger("pledge_ws.simulator")


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
            if self.closing or not self._exchange.faults.is_silent():
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


def serve_peer(ws: Server, peer: WsPeer, exchange: Exchange) -> None:
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
