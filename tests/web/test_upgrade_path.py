"""The upgrade seam (pledge_ws/web/upgrade.py) against real gunicorn: every refusal as before,
the handshake checks answered with HTTP errors, and the ping fast path on the wire."""

import os

import pytest
import websocket
from wsproto.utilities import generate_accept_token

from tests.support import Client, free_port, raw_upgrade, refused, upgrade_headers


@pytest.fixture
def guarded(service_factory, simulator):
    port = free_port()
    return service_factory(
        PORT=str(port),
        KUCOIN_API_URL=simulator.url,
        ALLOWED_ORIGINS=f"https://app.example,http://127.0.0.1:{port}",
        MAX_CONNECTIONS="3",
        MAX_CONNECTIONS_PER_IP="2",
        TRUSTED_PROXIES="127.0.0.1",
    )


def test_every_guard_refusal_is_answered_as_before(guarded):
    error = refused(guarded.ws_url, origin="https://evil.example")
    assert error.status_code == 403 and b"origin not allowed" in error.resp_body
    error = refused(guarded.ws_url + "?symbols=NOPE-USDT")
    assert error.status_code == 400 and b"unknown symbol" in error.resp_body
    a = [Client(guarded.ws_url, header=["X-Forwarded-For: 203.0.113.7"]) for _ in range(2)]
    error = refused(guarded.ws_url, header=["X-Forwarded-For: 203.0.113.7"])
    assert error.status_code == 429
    b = Client(guarded.ws_url, header=["X-Forwarded-For: 203.0.113.8"])
    error = refused(guarded.ws_url, header=["X-Forwarded-For: 203.0.113.9"])
    assert error.status_code == 503 and b"too many connections" in error.resp_body
    for client in [*a, b]:
        client.close()


def test_handshake_checks_answer_http_errors(guarded):
    port = guarded.port
    for override, status in [
        ({"Sec-WebSocket-Version": "8"}, b" 426 "),
        ({"Sec-WebSocket-Key": ""}, b" 400 "),
        ({"Sec-WebSocket-Key": "short"}, b" 400 "),
        ({"Connection": "keep-alive"}, b" 400 "),
    ]:
        sock, head = raw_upgrade(port, headers=upgrade_headers(port, **override))
        sock.close()
        assert head.startswith(b"HTTP/1.1") and status in head.split(b"\r\n")[0], (override, head[:200])
        if override.get("Sec-WebSocket-Version"):
            assert b"\r\nSec-WebSocket-Version: 13\r\n" in head
    sock, head = raw_upgrade(port, headers=upgrade_headers(port, Upgrade=""))
    sock.close()
    assert b" 400 " in head.split(b"\r\n")[0]  # the guard's "expected a WebSocket upgrade request"


def test_accepted_upgrade_speaks_rfc6455_and_the_ping_fast_path_answers(guarded):
    port = guarded.port
    headers = upgrade_headers(port)
    sock, head = raw_upgrade(port, headers=headers)
    try:
        assert head.startswith(b"HTTP/1.1 101 ")
        token = generate_accept_token(headers["Sec-WebSocket-Key"].encode())
        assert b"\r\nSec-WebSocket-Accept: " + token + b"\r\n" in head
        mask = os.urandom(4)
        sock.sendall(b"\x81\x84" + mask + bytes(c ^ mask[i] for i, c in enumerate(b"ping")))
        data = head.split(b"\r\n\r\n", 1)[1]
        pong = b'{"code":1,"data":"pong"}'
        while pong not in data:
            chunk = sock.recv(4096)
            assert chunk, "closed before the pong"
            data += chunk
    finally:
        sock.close()
    # The general path still answers the other spellings, and the fast path keeps counting pings.
    client = Client(guarded.ws_url)
    client.send("'ping'")
    assert client.next_non_price() == {"code": 1, "data": "pong"}
    client.send("ping")
    assert client.next_non_price() == {"code": 1, "data": "pong"}
    client.close()
    assert guarded.metric("pledge_ws_client_messages_total", 'kind="ping"') >= 3


def test_sigterm_close_carries_the_reconnect_hint(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url)
    client = Client(svc.ws_url)
    svc.stop()
    client.ws.settimeout(10)
    while True:
        opcode, frame = client.ws.recv_data_frame()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert int.from_bytes(frame.data[:2], "big") == 1001
    assert frame.data[2:].decode() == "server shutting down; reconnect_window_ms=5000"
