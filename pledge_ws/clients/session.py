"""One browser connection's greenlet: read, answer, enforce the heartbeat.

The upgrade (``web/upgrade.py``) hands over the socket and a handshake-free wsproto connection;
the session reads in the request greenlet itself, so a connection costs one greenlet (no
reader thread), and its receive timeout is the heartbeat deadline.
Writes never happen here directly: they go through :class:`~pledge_ws.clients.connection.Connection`.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import gevent
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from pledge_ws.clients.connection import Connection
from pledge_ws.clients.hub import Hub
from pledge_ws.clients.replay import Replayer
from pledge_ws.config import Settings
from pledge_ws.core import protocol
from pledge_ws.core.clock import HeartbeatClock, TokenBucket
from pledge_ws.core.recovery import Recovery
from pledge_ws.metrics import Metrics

log = logging.getLogger(__name__)

RECV_BYTES = 4096
CLOSE_GRACE = 1.0  # seconds to flush a close frame before dropping the socket


def _parser_idle(wsconn: object) -> bool:
    """wsproto holds no partial frame or message, so the next bytes start a frame (wsproto
    1.3.2, pinned: its frame and message decoders; if those ever move, the fast path turns off)."""
    proto = getattr(wsconn, "_proto", None)
    frames = getattr(proto, "_frame_decoder", None)
    messages = getattr(proto, "_message_decoder", None)
    buffer = getattr(frames, "buffer", None)
    return (
        buffer is not None
        and len(buffer) == 0
        and getattr(frames, "header", 0) is None
        and getattr(messages, "opcode", 0) is None
    )


class ClientSession:
    def __init__(
        self,
        ws: object,
        hub: Hub,
        settings: Settings,
        metrics: Metrics,
        symbols: tuple[str, ...],
        peer: str,
        now: Callable[[], float] = time.monotonic,
        since: dict[str, int] | None = None,
        replayer: Replayer | None = None,
    ) -> None:
        self.since = since  # /ws?since=...: the last seq the client holds per symbol
        self.replayer = replayer
        self.ws = ws  # upgrade.WebSocket: its socket and wsproto connection
        self.hub = hub
        self.settings = settings
        self.metrics = metrics
        self.symbols = symbols
        self.now = now
        self.conn = Connection(ws.sock, peer, hub)  # type: ignore[attr-defined]
        self._message: list[str] = []
        self._message_bytes = 0

    def run(self) -> None:
        conn, sock, wsconn = self.conn, self.ws.sock, self.ws.ws  # type: ignore[attr-defined]
        settings = self.settings
        clock = HeartbeatClock(settings.heartbeat_timeout, self.now())
        bucket = TokenBucket(settings.max_messages_per_second, max(1.0, settings.max_messages_per_second), self.now())
        self.hub.attach(conn, self.symbols, self._recovery())
        try:
            while not conn.closed and not conn.closing:
                remaining = clock.remaining(self.now())
                if remaining <= 0:
                    conn.send(protocol.text_frame(protocol.error_payload("heartbeat timeout")))
                    self._close(protocol.CLOSE_NORMAL, "heartbeat timeout")
                    break
                sock.settimeout(remaining)
                try:
                    data = sock.recv(RECV_BYTES)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                if not self._message and protocol.is_ping_frame(data) and _parser_idle(wsconn):
                    self._fast_ping(clock, bucket)  # same answer as the general path, ~10x cheaper
                    continue
                try:
                    wsconn.receive_data(data)
                    for event in wsconn.events():
                        self._handle(event, clock, bucket)
                        if conn.closing or conn.closed:
                            break
                except (RemoteProtocolError, LocalProtocolError) as exc:
                    self._close(protocol.CLOSE_POLICY, f"protocol error: {exc}"[:100])
                    break
        finally:
            self._finish()

    def _fast_ping(self, clock: HeartbeatClock, bucket: TokenBucket) -> None:
        if not bucket.take(self.now()):
            self.metrics.client_messages.labels(kind="rate_limited").inc()
            self._close(protocol.CLOSE_POLICY, "message rate limit exceeded")
            return
        self._on_text("ping", clock)

    def _recovery(self) -> Recovery | None:
        """The replay for ``since``; nothing yields between its last decision and the attach."""
        if not self.since or self.replayer is None:
            return None
        return self.replayer.recover(self.since)

    def _handle(self, event: object, clock: HeartbeatClock, bucket: TokenBucket) -> None:
        conn = self.conn
        if isinstance(event, Message):
            if not bucket.take(self.now()):
                self.metrics.client_messages.labels(kind="rate_limited").inc()
                self._close(protocol.CLOSE_POLICY, "message rate limit exceeded")
                return
            if isinstance(event, BytesMessage):
                self.metrics.client_messages.labels(kind="binary").inc()
                self._close(protocol.CLOSE_UNSUPPORTED, "binary frames are not supported")
                return
            assert isinstance(event, TextMessage)
            self._message_bytes += len(event.data.encode())
            if self._message_bytes > self.settings.max_message_bytes:
                self.metrics.client_messages.labels(kind="too_big").inc()
                self._close(protocol.CLOSE_TOO_BIG, "message too big")
                return
            self._message.append(event.data)
            if not event.message_finished:
                return
            text = "".join(self._message)
            self._message, self._message_bytes = [], 0
            self._on_text(text, clock)
        elif isinstance(event, Ping):
            conn.send(self.ws.ws.send(event.response()))  # type: ignore[attr-defined]
        elif isinstance(event, CloseConnection):
            reply = self.ws.ws.send(event.response())  # type: ignore[attr-defined]
            conn.close_with(reply, "client closed")

    def _on_text(self, text: str, clock: HeartbeatClock) -> None:
        message = protocol.parse_client_message(text, self.settings.symbols)
        conn = self.conn
        if isinstance(message, protocol.Ping):
            self.metrics.client_messages.labels(kind="ping").inc()
            clock.beat(self.now())
            conn.send(protocol.PONG_FRAME)
        elif isinstance(message, protocol.Subscribe):
            self.metrics.client_messages.labels(kind="subscribe").inc()
            self.hub.subscribe(conn, message.symbols)
        elif isinstance(message, protocol.Unsubscribe):
            self.metrics.client_messages.labels(kind="unsubscribe").inc()
            self.hub.unsubscribe(conn, message.symbols)
        else:
            self.metrics.client_messages.labels(kind="invalid").inc()
            conn.send(protocol.text_frame(protocol.error_payload(message.reason)))

    def _close(self, code: int, reason: str) -> None:
        if not (self.conn.closing or self.conn.closed):
            self.metrics.clients_closed.labels(reason=reason.split(":")[0]).inc()
        self.conn.close_with(protocol.close_frame(code, reason), reason)

    def _finish(self) -> None:
        conn = self.conn
        self.hub.detach(conn)
        deadline = self.now() + CLOSE_GRACE
        while not conn.drained and not conn.closed and self.now() < deadline:
            gevent.sleep(0.02)
        conn.release()
        self.ws.connected = False  # type: ignore[attr-defined]  # flask-sock must not send another close
        sock = self.ws.sock  # type: ignore[attr-defined]
        if conn.closed:  # aborted: the socket is already shut down
            return
        # Lingering close: FIN after our close frame, then discard what the client still
        # sends until it closes too. Closing with unread input would send a RST, and the
        # client could lose the close frame (and its code) that is still in flight.
        try:
            sock.shutdown(socket.SHUT_WR)
            while (remaining := deadline - self.now()) > 0:
                sock.settimeout(remaining)
                if not sock.recv(RECV_BYTES):
                    break
        except OSError:
            pass
