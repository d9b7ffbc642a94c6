"""The handshake checks and the ping fast path, as pure logic (no sockets)."""

import base64
import os

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.utilities import generate_accept_token

from pledge_ws.clients.session import _parser_idle
from pledge_ws.core.protocol import is_ping_frame
from pledge_ws.web.upgrade import Refusal, check_handshake

KEY = base64.b64encode(os.urandom(16)).decode()


def _environ(**override: str) -> dict[str, str]:
    env = {
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_CONNECTION": "keep-alive, Upgrade",
        "HTTP_UPGRADE": "WebSocket",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "HTTP_SEC_WEBSOCKET_KEY": KEY,
    }
    env.update(override)
    return {k: v for k, v in env.items() if v != "<absent>"}


def test_valid_handshake_answers_101_with_the_accept_token():
    answer = check_handshake(_environ())
    assert isinstance(answer, bytes)
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and answer.endswith(b"\r\n\r\n")
    assert b"\r\nSec-WebSocket-Accept: " + generate_accept_token(KEY.encode()) + b"\r\n" in answer
    assert b"Sec-WebSocket-Extensions" not in answer and b"Sec-WebSocket-Protocol" not in answer


@pytest.mark.parametrize(
    ("override", "status"),
    [
        ({"REQUEST_METHOD": "POST"}, 405),
        ({"SERVER_PROTOCOL": "HTTP/1.0"}, 400),
        ({"HTTP_CONNECTION": "keep-alive"}, 400),
        ({"HTTP_CONNECTION": "<absent>"}, 400),
        ({"HTTP_UPGRADE": "h2c"}, 400),
        ({"HTTP_SEC_WEBSOCKET_VERSION": "8"}, 426),
        ({"HTTP_SEC_WEBSOCKET_VERSION": "<absent>"}, 400),
        ({"HTTP_SEC_WEBSOCKET_KEY": "<absent>"}, 400),
        ({"HTTP_SEC_WEBSOCKET_KEY": "not base64!"}, 400),
        ({"HTTP_SEC_WEBSOCKET_KEY": base64.b64encode(b"x" * 15).decode()}, 400),
        ({"HTTP_SEC_WEBSOCKET_KEY": "é" * 24}, 400),
        ({"HTTP_HOST": "<absent>"}, 400),
    ],
)
def test_bad_handshakes_are_refused(override, status):
    answer = check_handshake(_environ(**override))
    assert isinstance(answer, Refusal) and answer.status == status, answer
    if status == 426 or "HTTP_SEC_WEBSOCKET_VERSION" in override:
        assert ("Sec-WebSocket-Version", "13") in answer.headers


def _masked(payload: bytes, first: int = 0x81, mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([first, 0x80 | len(payload)]) + mask + body


def test_ping_fast_path_takes_only_the_exact_masked_ping_frame():
    assert is_ping_frame(_masked(b"ping"))
    assert is_ping_frame(_masked(b"ping", mask=os.urandom(4)))
    assert not is_ping_frame(_masked(b"pong"))
    assert not is_ping_frame(_masked(b'"ping"'))  # other spellings: general path
    assert not is_ping_frame(_masked(b"ping", first=0x01))  # not FIN: a fragment
    assert not is_ping_frame(_masked(b"ping", first=0xC1))  # RSV1 set: wsproto must refuse it
    assert not is_ping_frame(_masked(b"ping", first=0x82))  # binary
    assert not is_ping_frame(b"\x81\x04ping")  # unmasked: protocol error, general path
    assert not is_ping_frame(_masked(b"ping") + _masked(b"ping"))  # two frames: general path
    assert not is_ping_frame(_masked(b"ping")[:9])


def test_parser_idle_only_between_frames_and_messages():
    conn = Connection(ConnectionType.SERVER)
    assert _parser_idle(conn)
    frame = _masked(b"ping")
    conn.receive_data(frame[:5])
    list(conn.events())
    assert not _parser_idle(conn)  # half a frame is buffered
    conn.receive_data(frame[5:])
    assert [e.data for e in conn.events()] == ["ping"]
    assert _parser_idle(conn)
    conn.receive_data(_masked(b"pi", first=0x01))  # first fragment of a text message
    list(conn.events())
    assert not _parser_idle(conn)  # a "ping" frame now would be a protocol error
    assert not _parser_idle(object())  # unknown wsproto internals: the fast path turns off
