"""The exchange simulator's fault injection and its process, tested from outside: injected
prices, failing bullets, silence, drops, malformed frames, the control API's checks, idle
closes, SIGTERM and bad command lines. Every wait is bounded in count and time."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import websocket

from pledge_ws.simulator import MALFORMED_KINDS
from tests.simulator.peer import (
    RECV_TIMEOUT,
    Connect,
    bullet,
    get_state,
    post,
    request,
    ws_url,
)
from tests.support import ROOT, Simulator, wait_until

pytestmark = pytest.mark.integration


# -- fault injection ----------------------------------------------------------------------


def test_injected_price_arrives_byte_exact(connect: Connect, base: str) -> None:
    client = connect()
    client.subscribe("PLGR-USDT")
    post(base, "/_sim/rate", {"rate": 0})
    answer = post(base, "/_sim/price", {"symbol": "PLGR-USDT", "price": "0.0027000"})
    assert answer["price"] == "0.0027000"
    last = get_state(base)["last"]["PLGR-USDT"]
    assert (last["price"], last["sequence"]) == ("0.0027000", answer["sequence"])
    frame = client.recv_until(lambda f: f.get("data", {}).get("sequence") == answer["sequence"])
    assert frame["data"]["price"] == "0.0027000"
    assert '"price":"0.0027000"' in client.seen[-1]
    post(base, "/_sim/rate", {"rate": 20})
    walked = client.ticks("PLGR-USDT", 1)[0]["data"]
    assert int(walked["sequence"]) == int(answer["sequence"]) + 1
    assert re.fullmatch(r"0\.[0-9]{6}", walked["price"]) and float(walked["price"]) > 0
    status, error = request(base, "/_sim/price", {"symbol": "FOO-BAR", "price": "1.0"})
    assert status == 404 and "FOO-BAR" in error["error"]
    for bad in ("abc", "-1", "0", "0.000", "1e5", 1.5, None):
        status, _ = request(base, "/_sim/price", {"symbol": "PLGR-USDT", "price": bad})
        assert status == 400, bad


def test_fail_bullet_then_success(base: str) -> None:
    assert post(base, "/_sim/fail-bullet", {"count": 2, "mode": "500"})["count"] == 2
    for _ in range(2):
        status, reply = request(base, "/api/v1/bullet-public")
        assert status == 500 and reply["code"] == "500000"
    assert request(base, "/api/v1/bullet-public")[0] == 200
    post(base, "/_sim/fail-bullet", {"count": 1, "mode": "badjson"})
    status, reply = request(base, "/api/v1/bullet-public")
    assert status == 200 and isinstance(reply, str)  # not JSON
    assert bullet(base)["token"]


def test_silent_stops_pongs_and_ticks_until_ended(connect: Connect, base: str) -> None:
    client = connect()
    client.subscribe("PLGR-USDT")
    post(base, "/_sim/silent", {"seconds": 30})
    assert get_state(base)["silent"] is True
    client.ws.settimeout(0.2)
    for _ in range(50):  # a tick may have been on the wire already
        try:
            client.ws.recv()
        except websocket.WebSocketTimeoutException:
            break
    client.send({"id": "p-silent", "type": "ping"})
    client.assert_quiet(0.5)
    post(base, "/_sim/silent", {"seconds": 0})
    client.send({"id": "p-back", "type": "ping"})
    pong = client.recv_until(lambda f: f.get("type") == "pong")
    assert pong["id"] == "p-back"  # the pong owed during the silence is never sent
    client.ticks("PLGR-USDT", 1)


def test_silence_ends_by_itself(base: str) -> None:
    post(base, "/_sim/silent", {"seconds": 0.3})
    assert get_state(base)["silent"] is True
    wait_until(lambda: get_state(base)["silent"] is False, 3, interval=0.02, what="silence to end")


def test_drop_close_sends_close_frame(connect: Connect, base: str) -> None:
    client = connect()
    assert post(base, "/_sim/drop", {"mode": "close"})["dropped"] == 1
    client.ws.settimeout(RECV_TIMEOUT)
    for _ in range(100):
        opcode, data = client.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert int.from_bytes(data[:2], "big") == 1001
            break
    else:
        pytest.fail("no close frame")
    wait_until(lambda: get_state(base)["connections"] == 0, 3, interval=0.02, what="connection to go")


def test_drop_reset_closes_without_close_frame(connect: Connect, base: str) -> None:
    client = connect()
    assert post(base, "/_sim/drop", {"mode": "reset"})["dropped"] == 1
    client.ws.settimeout(RECV_TIMEOUT)
    with pytest.raises((ConnectionError, websocket.WebSocketConnectionClosedException)):
        for _ in range(100):
            opcode, _ = client.ws.recv_data(control_frame=True)
            assert opcode != websocket.ABNF.OPCODE_CLOSE, "reset must not send a close frame"
    wait_until(lambda: get_state(base)["connections"] == 0, 3, interval=0.02, what="connection to go")


def test_malformed_frames_arrive_and_leave_books_alone(connect: Connect, base: str) -> None:
    client = connect()
    client.subscribe("PLGR-USDT")
    post(base, "/_sim/rate", {"rate": 0})
    client.ws.settimeout(0.2)
    for _ in range(50):
        try:
            client.ws.recv()
        except websocket.WebSocketTimeoutException:
            break
    before = get_state(base)["last"]
    answer = post(base, "/_sim/malformed", {"count": len(MALFORMED_KINDS)})
    assert answer["sent"] == len(MALFORMED_KINDS)
    frames = [client.recv_text() for _ in MALFORMED_KINDS]
    with pytest.raises(ValueError):
        json.loads(frames[0])
    parsed = [json.loads(text) for text in frames[1:]]
    assert isinstance(parsed[0], list)
    by_kind = dict(zip(MALFORMED_KINDS[1:], parsed, strict=True))
    assert "data" not in by_kind["missing_data"]
    assert by_kind["price_abc"]["data"]["price"] == "abc"
    assert by_kind["price_negative"]["data"]["price"] == "-1"
    assert by_kind["price_zero"]["data"]["price"] == "0"
    assert by_kind["price_nan"]["data"]["price"] == "NaN"
    assert by_kind["sequence_not_digits"]["data"]["sequence"] == "12a"
    assert by_kind["time_string"]["data"]["time"] == "x"
    last_seq = int(before["PLGR-USDT"]["sequence"])
    assert int(by_kind["sequence_out_of_order"]["data"]["sequence"]) < last_seq
    assert by_kind["unsubscribed_topic"]["topic"] != "/market/ticker:PLGR-USDT"
    assert by_kind["unknown_type"]["type"] not in {"message", "welcome", "pong", "ack", "error"}
    assert get_state(base)["last"] == before
    only_nan = post(base, "/_sim/malformed", {"count": 2, "kinds": ["price_nan"]})
    assert only_nan["sent"] == 2
    assert [json.loads(client.recv_text())["data"]["price"] for _ in range(2)] == ["NaN", "NaN"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_sim/rate", {"rate": -1}),
        ("/_sim/rate", {"rate": "fast"}),
        ("/_sim/rate", b"{not json"),
        ("/_sim/rate", [1]),
        ("/_sim/silent", {"seconds": True}),
        ("/_sim/drop", {"mode": "explode"}),
        ("/_sim/fail-bullet", {"count": 1, "mode": "404"}),
        ("/_sim/fail-bullet", {"count": 1.5}),
        ("/_sim/malformed", {"count": 1, "kinds": ["nope"]}),
        ("/_sim/sequence-reset", {"symbol": "PLGR-USDT", "start": 0}),
        ("/_sim/sequence-reset", {"symbol": "PLGR-USDT", "gap_ms": -1}),
    ],
)
def test_control_api_rejects_bad_input(base: str, path: str, body: object) -> None:
    status, reply = request(base, path, body)
    assert status == 400
    assert "error" in reply


# -- process behaviour --------------------------------------------------------------------


def test_idle_connection_is_closed_and_pings_keep_it_open() -> None:
    quick = Simulator(rate=1, ping_ms=(300, 200))
    try:
        data = bullet(quick.url)
        assert data["instanceServers"][0]["pingInterval"] == 300
        pinger = websocket.create_connection(ws_url(data, "pinger"), timeout=RECV_TIMEOUT)
        idle = websocket.create_connection(ws_url(bullet(quick.url), "idle"), timeout=RECV_TIMEOUT)
        assert json.loads(pinger.recv())["type"] == "welcome"
        assert json.loads(idle.recv())["type"] == "welcome"
        for index in range(8):  # 0.8 s, well past the 0.5 s idle limit
            pinger.send(json.dumps({"id": f"k{index}", "type": "ping"}))
            assert json.loads(pinger.recv())["type"] == "pong"
            time.sleep(0.1)
        opcode, payload = idle.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(payload[:2], "big") == 1008
        pinger.close()
        idle.close()
    finally:
        assert quick.stop() == 0


def test_sigterm_closes_clients_and_exits_zero() -> None:
    own = Simulator(rate=1, ping_ms=None)
    client = websocket.create_connection(ws_url(bullet(own.url), "c"), timeout=RECV_TIMEOUT)
    assert json.loads(client.recv())["type"] == "welcome"
    own.process.send_signal(signal.SIGTERM)
    opcode, payload = client.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(payload[:2], "big") == 1001
    assert own.process.proc.wait(5) == 0
    client.close()


@pytest.mark.parametrize(
    "args",
    [
        ["--start-price", "FOO-BAR=1.0"],
        ["--start-price", "PLGR-USDT=-1"],
        ["--rate", "-1"],
        ["--symbols", "plgr_usdt"],
        ["--ping-interval-ms", "0"],
    ],
)
def test_bad_command_line_exits_2(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pledge_ws.simulator", "--port", "0", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip()


# -- the exchange without sockets ---------------------------------------------------------
