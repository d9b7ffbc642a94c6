"""Browser-side limits, each triggered from a real client against real gunicorn."""

import contextlib
import socket
import time

import pytest

from tests.support import Client, free_port, http, refused, wait_until


@pytest.fixture
def limited(service_factory, simulator):
    port = free_port()
    svc = service_factory(
        PORT=str(port),
        KUCOIN_API_URL=simulator.url,
        # websocket-client sends its own URL as Origin: allow it, and one page origin.
        ALLOWED_ORIGINS=f"https://app.example,http://127.0.0.1:{port}",
        MAX_CONNECTIONS="4",
        MAX_CONNECTIONS_PER_IP="3",
        MAX_MESSAGE_BYTES="256",
        MAX_MESSAGES_PER_SECOND="5",
        TRUSTED_PROXIES="127.0.0.1",
    )
    return svc


def test_origin_allowlist_enforced_at_upgrade(limited):
    error = refused(limited.ws_url, origin="https://evil.example")
    assert error.status_code == 403 and b"origin not allowed" in error.resp_body
    Client(limited.ws_url, origin="https://app.example").close()
    assert limited.metric("pledge_ws_connections_rejected_total", 'reason="origin"') == 1


def test_connection_caps_per_ip_and_per_worker(limited):
    a = [Client(limited.ws_url, header=["X-Forwarded-For: 203.0.113.7"]) for _ in range(3)]
    error = refused(limited.ws_url, header=["X-Forwarded-For: 203.0.113.7"])
    assert error.status_code == 429
    b = Client(limited.ws_url, header=["X-Forwarded-For: 203.0.113.8"])  # another client IP is fine
    error = refused(limited.ws_url, header=["X-Forwarded-For: 203.0.113.9"])
    assert error.status_code == 503 and b"too many connections" in error.resp_body
    for client in [*a, b]:
        client.close()
    # Slots are given back when connections end.
    again = wait_until(
        lambda: Client(limited.ws_url, header=["X-Forwarded-For: 203.0.113.7"]), 5, what="the slots to be released"
    )
    again.close()
    assert limited.metric("pledge_ws_connections_rejected_total", 'reason="max_connections"') == 1
    assert limited.metric("pledge_ws_connections_rejected_total", 'reason="max_connections_per_ip"') == 1


def test_untrusted_peer_cannot_spoof_forwarded_for(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, MAX_CONNECTIONS_PER_IP="1")
    first = Client(svc.ws_url, header=["X-Forwarded-For: 198.51.100.1"])
    error = refused(svc.ws_url, header=["X-Forwarded-For: 198.51.100.2"])  # still 127.0.0.1
    assert error.status_code == 429
    first.close()


def test_oversized_message_closes_1009(limited):
    client = Client(limited.ws_url)
    with contextlib.suppress(OSError):
        client.send("x" * 300)
    assert client.close_code() == 1009


def test_message_flood_closes_1008(limited):
    client = Client(limited.ws_url)
    with contextlib.suppress(OSError):
        for _ in range(20):
            client.send("ping")
    assert client.close_code() == 1008


def test_binary_frame_closes_1003(limited):
    client = Client(limited.ws_url)
    client.ws.send_binary(b"\x00\x01")
    assert client.close_code() == 1003


def test_garbage_gets_error_frame_and_neighbour_unaffected(limited):
    bad, good = Client(limited.ws_url), Client(limited.ws_url)
    bad.send("{not json")
    assert bad.next_non_price() == {"code": -1, "data": "malformed JSON"}
    good.send("ping")
    assert good.next_non_price() == {"code": 1, "data": "pong"}


def test_slow_handshake_is_cut_off(limited):
    sock = socket.create_connection(("127.0.0.1", limited.port), timeout=10)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # and never finishes the headers
    started = time.monotonic()
    assert sock.recv(1024) == b""
    assert time.monotonic() - started < 8
    sock.close()


def test_plain_get_on_ws_path_is_400(limited):
    status, body = http("GET", limited.url + "/ws")
    assert status == 400 and "WebSocket" in body["error"]


def test_history_parameters_validated(limited):
    for query in ("limit=0", "limit=abc", "limit=100000", "since=-5"):
        status, body = http("GET", f"{limited.url}/price/history?{query}")
        assert status == 400, query
        assert "must be an integer" in body["error"]
    assert http("GET", f"{limited.url}/price/history?symbol=NOPE-X")[0] == 404
    status, body = http("GET", f"{limited.url}/price/history?limit=5")
    assert status == 200 and body == {"symbol": "PLGR-USDT", "ticks": []}


def test_history_returns_recent_ticks_oldest_first(service, simulator):
    sent = [simulator.set_price("PLGR-USDT", f"0.00{7000 + n}") for n in range(5)]
    wait_until(lambda: len(service.get("/price/history?limit=3")[1]["ticks"]) == 3, 5, what="history")
    wait_until(lambda: service.get("/price")[1]["price"] == "0.007004", 5, what="last price")
    ticks = service.get("/price/history?limit=3")[1]["ticks"]
    assert [t["price"] for t in ticks] == ["0.007002", "0.007003", "0.007004"]
    assert [t["seq"] for t in ticks] == [s["sequence"] for s in sent[2:]]
    since = sent[4]["time"]
    assert all(t["ts"] >= since for t in service.get(f"/price/history?since={since}")[1]["ticks"])
