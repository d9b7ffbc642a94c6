"""Fan-out: a lock-guarded registry of browser connections and the broadcaster greenlet.

Why it looks like this: waking a greenlet per client per tick costs more than the send
itself, and a blocking ``ws.send()`` in a loop lets one slow client stall everyone. So each
price is encoded once, written with a non-blocking ``send()`` straight to every socket that
can take it, and only a client whose socket is full gets a backlog: the unsent tail plus
the latest frame per symbol (latest value wins), flushed by an event-loop write watcher,
not a greenlet. A client that stays backlogged for ``SLOW_CLIENT_TIMEOUT`` is evicted.

A recovery replay (see recovery.py) is the exception to "latest value wins": its frames, and
every price that arrives while they are being written, queue in order (lossless, bounded by
``HISTORY_LIMIT`` per symbol plus REPLAY_LIVE_LIMIT), through the same writer and watcher.
Until the replay is written a recovering client is not in the symbol's fan-out set: the
broadcaster hands it the first tick above the replay's last sequence, then moves it in, so
the seam has no duplicate and no hole.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable

import gevent
import gevent.lock
import gevent.queue

from pledge_ws.metrics import Metrics
from pledge_ws.protocol import price_payload, text_frame
from pledge_ws.recovery import Recovery
from pledge_ws.ticks import Tick

log = logging.getLogger(__name__)

MAX_CONTROL_BACKLOG = 64  # pongs and errors queued for a client that does not read
# Kernel send buffer per client socket (Linux doubles it). Loopback and LAN autotuning would
# otherwise let each non-reading client pin up to 4 MB of kernel memory before its socket
# ever reports "full"; 32 KiB is still ~300 price frames of slack for a briefly slow reader.
SEND_BUFFER_BYTES = 32 * 1024
TICK_QUEUE_SIZE = 4096
# When the broadcaster is this far behind the feed (it cannot push every tick to every
# client within a tick interval, e.g. on an overloaded core), a tick that already has a newer
# one of its symbol queued is skipped: latency stays bounded instead of growing without end.
# While the broadcaster keeps up, nothing is ever skipped.
MAX_BROADCAST_LAG = 0.25
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

    def __init__(self, sock: socket.socket, peer: str, hub: Hub) -> None:
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


class Hub:
    """Registry of connections per symbol plus the broadcaster that feeds them."""

    def __init__(self, symbols: Iterable[str], metrics: Metrics, slow_client_timeout: float) -> None:
        self.metrics = metrics
        self.slow_client_timeout = slow_client_timeout
        self._lock = gevent.lock.RLock()
        self._subscribers: dict[str, set[Connection]] = {symbol: set() for symbol in symbols}
        self._targets: dict[str, tuple[Connection, ...]] = {}
        self._latest_frame: dict[str, bytes] = {}
        # Recovering clients per symbol, each with the last sequence its replay holds.
        self._recovering: dict[str, dict[Connection, int]] = {}
        self._queue: gevent.queue.Queue[tuple[Tick, float]] = gevent.queue.Queue(maxsize=TICK_QUEUE_SIZE)
        self._newest_queued: dict[str, int] = {}
        self.backlogged: set[Connection] = set()
        self.connections: set[Connection] = set()
        self._notice: bytes | None = None  # sent after the snapshot while prices are stale

    # -- registry -------------------------------------------------------------------------

    def attach(self, conn: Connection, symbols: Iterable[str], recovery: Recovery | None = None) -> None:
        """Register ``conn``; with ``recovery``, its replay replaces those symbols' snapshots.

        Must not yield between the caller's recovery decision and here (nothing below does):
        the replay then ends exactly where the broadcaster's next tick for this client starts.
        """
        with self._lock:
            self.connections.add(conn)
        self.metrics.connections.set(len(self.connections))
        if recovery is not None:
            conn.replay(recovery.frames)
            with self._lock:
                for symbol, floor in recovery.floors.items():
                    conn.symbols.add(symbol)
                    self._recovering.setdefault(symbol, {})[conn] = floor
        self.subscribe(conn, symbols)
        if self._notice is not None:
            conn.send(self._notice)

    def set_notice(self, frame: bytes | None) -> None:
        """Tell every client (now, and each new one) that prices are stale; None clears it."""
        self._notice = frame
        if frame is not None:
            for conn in list(self.connections):
                conn.send(frame)

    def detach(self, conn: Connection) -> None:
        """Stop sending prices to ``conn``; its queued frames may still drain."""
        with self._lock:
            self.connections.discard(conn)
            for symbol in conn.symbols:
                self._recovering.get(symbol, {}).pop(conn, None)
                self._subscribers[symbol].discard(conn)
                self._targets.pop(symbol, None)
            conn.symbols.clear()
        self.metrics.connections.set(len(self.connections))

    def subscribe(self, conn: Connection, symbols: Iterable[str]) -> None:
        """Add symbols and send each one's latest price at once (no wait for the next trade)."""
        added = []
        with self._lock:
            for symbol in symbols:
                if symbol not in conn.symbols:
                    conn.symbols.add(symbol)
                    self._subscribers[symbol].add(conn)
                    self._targets.pop(symbol, None)
                    added.append(symbol)
        for symbol in added:
            frame = self._latest_frame.get(symbol)
            if frame is not None:
                conn.send(frame, symbol)

    def unsubscribe(self, conn: Connection, symbols: Iterable[str]) -> None:
        with self._lock:
            for symbol in symbols:
                if symbol in conn.symbols:
                    conn.symbols.discard(symbol)
                    self._recovering.get(symbol, {}).pop(conn, None)
                    self._subscribers[symbol].discard(conn)
                    self._targets.pop(symbol, None)
                    conn.drop_symbol(symbol)

    def _targets_for(self, symbol: str) -> tuple[Connection, ...]:
        # Rebuilt at most once per tick after a change, instead of copied per change:
        # a connection storm costs O(n) per tick, not O(n) per connect.
        targets = self._targets.get(symbol)
        if targets is None:
            with self._lock:
                targets = self._targets[symbol] = tuple(self._subscribers[symbol])
        return targets

    # -- broadcasting ---------------------------------------------------------------------

    def offer(self, tick: Tick) -> None:
        """Queue a tick for fan-out; never blocks the caller (the exchange loop).

        On overflow the oldest queued tick goes: the newest price always gets through.
        """
        self._newest_queued[tick.symbol] = tick.order
        item = (tick, time.monotonic())
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except gevent.queue.Full:
                try:
                    self._queue.get_nowait()
                    self.metrics.ticks_dropped.labels(reason="queue_full").inc()
                except gevent.queue.Empty:
                    pass

    def seed(self, tick: Tick) -> None:
        """Make ``tick`` the snapshot new clients get, without pushing it."""
        self._latest_frame[tick.symbol] = text_frame(price_payload(tick))

    def publish(self, tick: Tick) -> int:
        frame = text_frame(price_payload(tick))
        symbol = tick.symbol
        self._latest_frame[symbol] = frame
        targets = self._targets_for(symbol)
        for conn in targets:
            conn.send(frame, symbol)
        sent = len(targets)
        waiting = self._recovering.get(symbol)
        if waiting:
            sent += self._end_recovery(symbol, waiting, tick.order, frame)
        self.metrics.frames_sent.inc(sent)
        return sent

    def _end_recovery(self, symbol: str, waiting: dict[Connection, int], order: int, frame: bytes) -> int:
        """Hand recovering clients the first tick above their replay, and move them into the
        fan-out set; a tick their replay already holds is skipped for them."""
        done = [conn for conn, floor in waiting.items() if order > floor]
        with self._lock:
            for conn in done:
                del waiting[conn]
                if symbol in conn.symbols:
                    conn.send(frame, symbol)
                    self._subscribers[symbol].add(conn)
                    self._targets.pop(symbol, None)
        return len(done)

    def run_broadcaster(self) -> None:
        while True:
            tick, offered_at = self._queue.get()
            if time.monotonic() - offered_at > MAX_BROADCAST_LAG and self._newest_queued[tick.symbol] > tick.order:
                self.metrics.ticks_dropped.labels(reason="broadcast_lag").inc()
                continue
            try:
                self.publish(tick)
            except Exception:  # a bug here must not end fan-out for everyone
                log.exception("broadcast failed", extra={"event": "broadcast_failed"})

    def run_reaper(self, interval: float = 0.5, now: Callable[[], float] = time.monotonic) -> None:
        """Evict clients whose socket stayed full for longer than ``slow_client_timeout``."""
        while True:
            gevent.sleep(interval)
            limit = now() - self.slow_client_timeout
            for conn in [c for c in self.backlogged if c.backlog_since is not None and c.backlog_since < limit]:
                conn.abort(f"slow client: socket unwritable for {self.slow_client_timeout:g}s", evicted=True)

    def close_all(self, frame: bytes, reason: str) -> int:
        """Queue ``frame`` (a close frame) to every client; returns how many."""
        conns = list(self.connections)
        for conn in conns:
            conn.close_with(frame, reason, wake=True)
        return len(conns)
