"""The WebSocket opening handshake by hand on a plain socket, for what a library client would
not send (bad headers, tiny receive windows) or would hide (the refusal's status and body)."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from typing import Any


def upgrade_headers(port: int, **override: str) -> dict[str, str]:
    """A valid RFC 6455 opening handshake's headers; an override of "" leaves a header out."""
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **override,
    }
    return {k: v for k, v in headers.items() if v}


def raw_upgrade(
    port: int, path: str = "/ws", headers: dict[str, str] | None = None, rcvbuf: int | None = None, read: bool = True
) -> tuple[socket.socket, bytes]:
    """The one raw WebSocket upgrade of the tests: send the handshake by hand on a plain socket
    (``rcvbuf``: a tiny receive window, for clients that stop reading). With ``read``, the
    answer's head and whatever followed it in the same reads; else b"" (read it later)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in (headers or upgrade_headers(port)).items()), "", ""]
    sock.sendall("\r\n".join(lines).encode())
    data = b""
    while read and b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return sock, data


def upgrade_status(port: int, query: str) -> tuple[int, Any]:
    """Upgrade ``/ws?query``: the HTTP status, and the JSON body of a refusal (None for 101)."""
    sock, data = raw_upgrade(port, f"/ws?{query}")
    with sock:
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        if status == 101:
            return status, None
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        while len(body) < length:
            body += sock.recv(4096)
        return status, json.loads(body)


def read_close_code(sock: socket.socket, deadline: float, buffer: bytes = b"") -> int | None:
    """Read a raw upgrade's answer and server frames until a close frame: its status code
    (None if the socket closed or the deadline passed first)."""
    while time.monotonic() < deadline:
        if buffer.startswith(b"HTTP/"):
            if b"\r\n\r\n" not in buffer:
                buffer += _recv(sock, deadline)
                continue
            buffer = buffer.split(b"\r\n\r\n", 1)[1]
        while len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            header = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            if len(buffer) < header:
                break
            if length >= 126:
                length = int.from_bytes(buffer[2:header], "big")
            if len(buffer) < header + length:
                break
            if opcode == 0x8:
                return int.from_bytes(buffer[header : header + 2], "big")
            buffer = buffer[header + length :]
        chunk = _recv(sock, deadline)
        if not chunk:
            return None
        buffer += chunk
    return None


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""
