"""The write side of one browser socket: non-blocking sends and a bounded backlog.

Why it looks like this: a blocking ``ws.send()`` lets one slow client stall everyone, and
waking a greenlet per client per tick costs more than the send itself. So the broadcaster
(hub.py) calls :meth:`Connection.send`, which writes straight to the non-blocking OS
socket; only when the socket is full does the connection keep a backlog: the unsent tail,
the latest frame per symbol (latest value wins) and a few control frames, flushed by an
event-loop write watcher, not a greenlet. The owner (the hub) evicts a connection that stays
backlogged for ``SLOW_CLIENT_TIMEOUT``.

A recovery replay (core/recovery.py) is the exception to "latest value wins": its frames, and
every price that arrives while they are being written, queue in order (lossless, bounded by
``HISTORY_LIMIT`` per symbol plus REPLAY_LIVE_LIMIT), through the same writer and watcher.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections import deque
from typing import Protocol

import gevent

from pledge_ws.metrics import Metrics

log = logging.getLogger(__name__)


class Owner(Protocol):
    """What a connection needs from the registry that holds it (the hub)."""

    metrics: Metrics
    backlogged: set[Connection]


MAX_CONTROL_BACKLOG = 64  # pongs and errors queued for a client that does not read
# Kernel send buffer per client socket (Linux doubles it). Loopback and LAN autotuning would
# otherwise let each non-reading client pin up to 4 MB of kernel memory before its socket
# ever reports "full"; 32 KiB is still ~300 price frames of slack for a briefly slow reader.
SEND_BUFFER_BYTES = 32 * 1024
# Prices that may queue behind a replay that is still being written; beyond it the client is
# evicted (it would otherwise be conflated, which a replay must never be).
REPLAY_LIVE_LIMIT = 1024
REPLAY_CHUNK = 64 * 1024  # bytes of queued replay frames joined into one send()
_WRITE = 2  # libev/libuv EV_WRITE


class Connection:
    """The write side of one browser socket; never blocks its caller."""

    __slots__ = (
        "_control",
        "_hub",
        "_latest",
        "_partial",
        "_raw",
        "_replay",
        "_replay_room",
        "_watcher",
        "backlog_since",
        "close_reason",
        "closed",
        "closing",
        "peer",
        "sock",
        "symbols",
    )

    def __init__(self, sock: socket.socket, peer: str, hub: Owner) -> None:
        self.sock = sock
        # gevent's socket wraps a non-blocking OS socket; writing to that directly gives
        # "all sent", "part sent" or EAGAIN at once instead of parking a greenlet.
        self._raw: socket.socket = getattr(sock, "_sock", sock)
        with contextlib.suppress(OSError):
            self._raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self.peer = peer
        self.symbols: set[str] = set()
        self._partial: memoryview | None = None
        self._control: deque[bytes] | None = None
        self._latest: dict[str, bytes] | None = None
        self._replay: deque[bytes] | None = None
        self._replay_room = 0  # live prices that may still queue behind the replay
        self._watcher = None
        self._hub = hub
        self.backlog_since: float | None = None
        self.closing = False
        self.closed = False
        self.close_reason = ""

    def send(self, frame: bytes, symbol: str | None = None) -> None:
        """Write ``frame`` now if the socket takes it, else keep it in the bounded backlog.

        Price frames (``symbol`` given) replace any older unsent price of that symbol;
        other frames (pong, errors, close) queue in order, at most MAX_CONTROL_BACKLOG.
        """
        if self.closing or self.closed:
            return
        if self.backlog_since is None:
            sent = self._write(frame)
            if sent == len(frame) or sent < 0:
                return
            self._partial = memoryview(frame)[sent:]
            self._start_backlog()
        elif symbol is not None and self._replay:
            if self._replay_room <= 0:
                self.abort("slow client: replay backlog full", evicted=True)
                return
            self._replay_room -= 1
            self._replay.append(frame)  # behind a replay: in order, never conflated
        elif symbol is not None:
            if self._latest is None:
                self._latest = {}
            elif symbol in self._latest:
                self._hub.metrics.frames_conflated.inc()
            self._latest[symbol] = frame
        else:
            if self._control is None:
                self._control = deque()
            if len(self._control) >= MAX_CONTROL_BACKLOG:
                self.abort("slow client: control backlog full", evicted=True)
                return
            self._control.append(frame)

    def replay(self, frames: list[bytes]) -> None:
        """Queue ``frames`` (status frames and replayed prices) losslessly, in order, and write
        what the socket takes now; the rest drains like any backlog (and is reaped like one)."""
        if self.closing or self.closed or not frames:
            return
        if self._replay is None:
            self._replay = deque()
        self._replay.extend(frames)
        self._replay_room = REPLAY_LIVE_LIMIT
        if self.backlog_since is None:
            self._start_backlog()
            self._flush()

    def _write(self, data: bytes | memoryview) -> int:
        """Bytes the kernel took now (0 if the socket is full), or -1 if the client is gone."""
        try:
            return self._raw.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self.abort(f"send failed: {exc.strerror or exc}")
            return -1

    def drop_symbol(self, symbol: str) -> None:
        if self._latest:
            self._latest.pop(symbol, None)

    def backlog_bytes(self) -> int:
        """Bytes held for this client in user space: at most one partial frame, one price
        frame per subscribed symbol and MAX_CONTROL_BACKLOG small control frames."""
        held = len(self._partial) if self._partial is not None else 0
        held += sum(len(frame) for frame in self._control or ())
        held += sum(len(frame) for frame in (self._latest or {}).values())
        held += sum(len(frame) for frame in self._replay or ())
        return held

    @property
    def drained(self) -> bool:
        return self.backlog_since is None

    def _start_backlog(self) -> None:
        self.backlog_since = time.monotonic()
        if self._watcher is None:
            self._watcher = gevent.get_hub().loop.io(self._raw.fileno(), _WRITE)
        self._watcher.start(self._flush)
        self._hub.backlogged.add(self)

    def _next_chunk(self) -> bytes | memoryview | None:
        if self._partial is not None:
            return self._partial
        if self._control:
            return self._control.popleft()
        if self._replay:
            replay, parts, size = self._replay, [], 0
            while replay and size < REPLAY_CHUNK:
                parts.append(replay.popleft())
                size += len(parts[-1])
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if self._latest:
            symbol = next(iter(self._latest))
            return self._latest.pop(symbol)
        return None

    def _flush(self) -> None:
        """Write watcher callback: runs in the event loop, so it must not block."""
        while not self.closed:
            chunk = self._next_chunk()
            if chunk is None:
                self._end_backlog()
                return
            sent = self._write(chunk)
            if sent < 0:
                return
            if sent < len(chunk):
                self._partial = memoryview(chunk)[sent:]
                return
            self._partial = None

    def _end_backlog(self) -> None:
        self.backlog_since = None
        if self._watcher is not None:
            self._watcher.stop()
        self._hub.backlogged.discard(self)

    def close_with(self, frame: bytes, reason: str, wake: bool = False) -> None:
        """Queue a close frame after what is already queued, then accept nothing more.

        ``wake`` (when the caller is not the session itself) ends the session's pending
        read with EOF, so it notices and finishes the close.
        """
        if self.closing or self.closed:
            return
        self._latest = self._replay = None  # no price may follow the close frame
        self.send(frame)
        self.closing = True
        self.close_reason = self.close_reason or reason
        if wake:
            with contextlib.suppress(OSError):
                self._raw.shutdown(socket.SHUT_RD)

    def abort(self, reason: str, evicted: bool = False) -> None:
        """Drop the client now: discard its backlog and wake its session with EOF."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = self.close_reason or reason
        self._partial = self._control = self._latest = self._replay = None
        self._end_backlog()
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        if evicted:
            self._hub.metrics.clients_evicted.labels(reason="slow").inc()
            log.info("client evicted", extra={"event": "client_evicted", "peer": self.peer, "reason": reason})
        try:
            # RST instead of FIN: the kernel frees the unread send buffer at once.
            self._raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def release(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None
        self._hub.backlogged.discard(self)
