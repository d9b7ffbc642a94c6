"""The ``/ws`` upgrade: the one seam between pledge-ws and flask-sock / simple-websocket.

Why it exists: a connection storm is bounded by the CPU of each upgrade. flask-sock's route
builds a ``simple_websocket.Server``, which rebuilds the HTTP request from the WSGI environ
as text, parses it again with h11, runs wsproto's handshake state machine and writes the 101
through h11: about a tenth of an upgrade's CPU, for checks the environ already answers.

Here the route is still registered through flask-sock's extension (:class:`UpgradeSock`
subclasses ``flask_sock.Sock``; only ``route`` differs) and behaves like flask-sock's own on
gunicorn: the view gets a websocket object, and the response tells gunicorn the socket was
taken over. The handshake itself is :func:`check_handshake`, a pure function of the request
headers making the checks wsproto's server handshake makes (GET, HTTP/1.1, ``Connection:
Upgrade``, ``Upgrade: websocket``, ``Sec-WebSocket-Version: 13`` else 426, a key, ``Host``),
plus RFC 6455 4.2.1's "the key is 16 base64-encoded bytes"; the accept token comes from
wsproto's ``generate_accept_token``, frames from a handshake-free
``wsproto.Connection(ConnectionType.SERVER)``. Origin, limits and symbols are checked before
this, in the views' ``before_request`` guard, with their 400/403/429/503 answers unchanged.
No subprotocol and no extension is ever negotiated (the guard drops permessage-deflate).

Pinned: flask-sock 0.7.0, simple-websocket 1.1.0, wsproto 1.3.2 (requirements.txt). If
flask-sock's gunicorn "already handled" convention changes, this module is what to revisit.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Response, request
from flask_sock import Sock
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.utilities import generate_accept_token

NOT_UNDER_GUNICORN = (
    "/ws is served only under gunicorn's gevent worker: start the service with `pledge-ws` "
    "(or `gunicorn -c gunicorn.conf.py app:app` in a checkout), not `flask run`"
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An upgrade answered with an HTTP error instead of 101."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def _has_token(value: str, token: str) -> bool:
    return any(part.strip().lower() == token for part in value.split(","))


def check_handshake(environ: Mapping[str, Any]) -> bytes | Refusal:
    """The 101 response bytes for a valid RFC 6455 opening handshake, else a Refusal. Pure."""
    if environ.get("REQUEST_METHOD") != "GET":
        return Refusal(405, "WebSocket upgrades must use GET")
    if environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
        return Refusal(400, "WebSocket upgrades need HTTP/1.1")
    if not _has_token(environ.get("HTTP_CONNECTION", ""), "upgrade"):
        return Refusal(400, "missing header 'Connection: Upgrade'")
    if environ.get("HTTP_UPGRADE", "").strip().lower() != "websocket":
        return Refusal(400, "missing header 'Upgrade: websocket'")
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
    if version != "13":
        headers = (("Sec-WebSocket-Version", "13"),)
        return Refusal(426 if version else 400, "Sec-WebSocket-Version must be 13", headers)
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        valid_key = len(binascii.a2b_base64(key.encode("ascii"), strict_mode=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        valid_key = False
    if not valid_key:
        return Refusal(400, "Sec-WebSocket-Key must be 16 base64-encoded bytes")
    if not environ.get("HTTP_HOST"):
        return Refusal(400, "missing header 'Host'")
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + generate_accept_token(key.encode("ascii")) + b"\r\n\r\n"
    )


class WebSocket:
    """What the view gets: the socket and a wsproto connection (the subset of
    ``simple_websocket.Server`` that :class:`~pledge_ws.clients.session.ClientSession` uses)."""

    __slots__ = ("connected", "sock", "ws")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ws = Connection(ConnectionType.SERVER)
        self.connected = True

    def close(self) -> None:
        """Best-effort close frame if the view left the connection open (it normally closes itself)."""
        if self.connected:
            self.connected = False
            with contextlib.suppress(OSError):
                self.sock.sendall(b"\x88\x02\x03\xe8")  # close 1000


class _TakenOver(Response):
    """Tells gunicorn's worker the socket is no longer HTTP (flask-sock's gunicorn convention)."""

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise StopIteration()


def _refusal_response(refusal: Refusal) -> Response:
    body = json.dumps({"error": refusal.reason})
    return Response(body, refusal.status, headers=list(refusal.headers), mimetype="application/json")


class UpgradeSock(Sock):
    """flask-sock's extension with a cheaper upgrade; see the module docstring."""

    def route(self, path: str, bp: Any = None, **kwargs: Any) -> Callable[[Callable[..., None]], None]:
        def decorator(view: Callable[..., None]) -> None:
            @wraps(view)
            def websocket_route(*args: Any, **kw: Any) -> Response:
                environ = request.environ
                sock = environ.get("gunicorn.socket")
                if sock is None:
                    return _refusal_response(Refusal(500, NOT_UNDER_GUNICORN))
                answer = check_handshake(environ)
                if isinstance(answer, Refusal):
                    return _refusal_response(answer)
                ws = WebSocket(sock)
                try:
                    with contextlib.suppress(OSError):  # the client went away mid-handshake
                        sock.sendall(answer)
                        view(ws, *args, **kw)
                finally:
                    ws.close()
                return _TakenOver()

            kwargs["websocket"] = True
            if bp is not None:
                bp.route(path, **kwargs)(websocket_route)
            elif self.app is not None:
                self.app.route(path, **kwargs)(websocket_route)
            else:
                raise RuntimeError("UpgradeSock needs its app before routes are added")

        return decorator
