import json
import struct

import pytest

from pledge_ws.core import protocol
from pledge_ws.core.protocol import Invalid, Ping, Subscribe, Unsubscribe, parse_client_message
from pledge_ws.core.ticks import Tick

SYMBOLS = ("PLGR-USDT", "BTC-USDT")


@pytest.mark.parametrize("text", ["ping", '"ping"', "'ping'", " ping\n"])
def test_three_ping_spellings(text):
    assert parse_client_message(text, SYMBOLS) == Ping()


def test_subscribe_and_unsubscribe():
    assert parse_client_message('{"op":"subscribe","symbols":["btc-usdt"]}', SYMBOLS) == Subscribe(("BTC-USDT",))
    assert parse_client_message('{"op":"unsubscribe","symbols":["PLGR-USDT"]}', SYMBOLS) == Unsubscribe(("PLGR-USDT",))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"op":"subscribe","symbols":["FOO-BAR"]}', "unknown symbol: FOO-BAR"),
        ('{"op":"subscribe","symbols":[]}', "symbols must be a non-empty list of strings"),
        ('{"op":"subscribe","symbols":[1]}', "symbols must be a non-empty list of strings"),
        ('{"op":"explode"}', "unsupported op"),
        ("{not json", "malformed JSON"),
        ("[1]", "unsupported message"),
        ("PING", "unsupported message"),
        ("{" * 10000, "malformed JSON"),
    ],
)
def test_invalid_messages(text, reason):
    assert parse_client_message(text, SYMBOLS) == Invalid(reason)


def test_price_payload_keeps_go_shape_and_exchange_strings():
    payload = protocol.price_payload(Tick("PLGR-USDT", "0.002700", "0001", 1704873323416))
    assert json.loads(payload) == {
        "code": 0,
        "data": "0.002700",
        "symbol": "PLGR-USDT",
        "seq": "0001",
        "ts": 1704873323416,
    }
    assert payload.startswith(b'{"code":0,"data":"0.002700"')


def test_pong_and_error_payloads():
    assert json.loads(protocol.PONG_PAYLOAD) == {"code": 1, "data": "pong"}
    assert json.loads(protocol.error_payload("heartbeat timeout")) == {"code": -1, "data": "heartbeat timeout"}


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_text_frame_header_lengths(size):
    payload = b"x" * size
    frame = protocol.text_frame(payload)
    assert frame[0] == 0x81  # FIN + text
    assert frame[1] & 0x80 == 0  # server frames are never masked
    if size < 126:
        assert frame[1] == size and frame[2:] == payload
    elif size < 65536:
        assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == size and frame[4:] == payload
    else:
        assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == size and frame[10:] == payload


def test_close_frame_caps_reason_at_control_frame_limit():
    frame = protocol.close_frame(1001, "x" * 500)
    assert frame[0] == 0x88 and frame[1] == 125
    assert struct.unpack("!H", frame[2:4])[0] == 1001
