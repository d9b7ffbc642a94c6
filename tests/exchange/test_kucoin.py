"""The exchange protocol core, fed recorded KuCoin frames; no sockets."""

import json

import pytest

from pledge_ws.core.ticks import Tick
from pledge_ws.exchange import kucoin
from tests.support import ROOT

FRAMES = (ROOT / "tests" / "data" / "kucoin_session.jsonl").read_text().splitlines()
BULLET = {
    "code": "200000",
    "data": {
        "token": "2neAiuYvAU61ZDXANAGAsiL4",
        "instanceServers": [
            {
                "endpoint": "wss://ws-api-spot.kucoin.com/",
                "encrypt": True,
                "protocol": "websocket",
                "pingInterval": 18000,
                "pingTimeout": 10000,
            }
        ],
    },
}


def test_recorded_session_parses_to_events():
    events = [kucoin.parse_frame(line) for line in FRAMES]
    assert events[0] == kucoin.Welcome("hQvf8jkno")
    assert events[1] == kucoin.Ack("sub-1-0")
    assert events[2] == Tick("PLGR-USDT", "0.002700", "1545896668986", 1704873323416)
    assert events[3] == kucoin.Pong("1704873323500")
    assert events[4] == Tick("BTC-USDT", "67012.3", "1545896669001", 1704873323999)  # capital "Time"
    assert events[5] == kucoin.ExchangeError("sub-2-0", 404, "topic /market/ticker:FOO-BAR is not found", ("FOO-BAR",))
    assert events[6] == kucoin.Other("notice")


def test_price_string_is_kept_byte_for_byte():
    frame = json.loads(FRAMES[2])
    frame["data"]["price"] = "0.00270000"
    tick = kucoin.parse_frame(json.dumps(frame))
    assert isinstance(tick, Tick) and tick.price == "0.00270000"


def _tick_frame(**data_overrides):
    frame = json.loads(FRAMES[2])
    frame["data"].update(data_overrides)
    return json.dumps(frame)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "bad_json"),
        ("[1,2]", "bad_shape"),
        ('{"type": 5}', "bad_type"),
        ('{"type":"message","topic":"/market/match:PLGR-USDT","data":{}}', "bad_topic"),
        ('{"type":"message","topic":"/market/ticker:PLGR-USDT"}', "bad_data"),
        (_tick_frame(price="abc"), "bad_price"),
        (_tick_frame(price="-1"), "bad_price"),
        (_tick_frame(price="0"), "bad_price"),
        (_tick_frame(price="0.000"), "bad_price"),
        (_tick_frame(price="NaN"), "bad_price"),
        (_tick_frame(price="1e5"), "bad_price"),
        (_tick_frame(price=1.5), "bad_price"),
        (_tick_frame(sequence="12a"), "bad_sequence"),
        (_tick_frame(sequence=12), "bad_sequence"),
        (_tick_frame(time="x"), "bad_time"),
        (_tick_frame(time=True), "bad_time"),
        ('{"type":"message","topic":"/market/ticker:bad symbol","data":{}}', "bad_symbol"),
        ("[" * 100_000 + "]" * 100_000, "oversized"),
        ("[" * 5000 + "]" * 5000, "bad_json"),
    ],
)
def test_malformed_frames_raise_frame_error_with_reason(text, reason):
    with pytest.raises(kucoin.FrameError) as info:
        kucoin.parse_frame(text)
    assert info.value.reason == reason


def test_parse_bullet():
    bullet = kucoin.parse_bullet(json.dumps(BULLET))
    server = kucoin.Server("wss://ws-api-spot.kucoin.com/", 18.0, 10.0)
    assert bullet == kucoin.Bullet("2neAiuYvAU61ZDXANAGAsiL4", (server,))
    url = bullet.connect_url("abc123")
    assert url == "wss://ws-api-spot.kucoin.com/?token=2neAiuYvAU61ZDXANAGAsiL4&connectId=abc123"


def test_every_instance_server_is_a_candidate_in_turn():
    body = json.loads(json.dumps(BULLET))
    second = {**body["data"]["instanceServers"][0], "endpoint": "wss://ws-b.example/", "pingInterval": 5000}
    body["data"]["instanceServers"].append(second)
    bullet = kucoin.parse_bullet(json.dumps(body))
    assert [bullet.server(n).endpoint for n in range(3)] == [
        "wss://ws-api-spot.kucoin.com/",
        "wss://ws-b.example/",
        "wss://ws-api-spot.kucoin.com/",
    ]
    assert bullet.server(1).ping_interval == 5.0
    assert bullet.connect_url("c", 1).startswith("wss://ws-b.example/?token=")


LEVEL1 = {
    "code": "200000",
    "data": {
        "time": 1704873323416,
        "sequence": "1545896668986",
        "price": "0.002700",
        "size": "12.5",
        "bestBid": "0.0027",
        "bestBidSize": "2",
        "bestAsk": "0.0028",
        "bestAskSize": "1",
    },
}


def test_parse_level1_keeps_the_exchange_strings_and_marks_the_source():
    tick = kucoin.parse_level1("PLGR-USDT", json.dumps(LEVEL1))
    assert (tick.symbol, tick.price, tick.sequence, tick.ts, tick.source) == (
        "PLGR-USDT",
        "0.002700",
        "1545896668986",
        1704873323416,
        "rest",
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"code":"200000","data":null}', "no_data"),
        ('{"code":"400100","msg":"bad symbol"}', "refused"),
        ("[]", "bad_shape"),
        ("<html>", "bad_json"),
        ('{"code":"200000","data":[1]}', "bad_data"),
        ('{"code":"200000","data":{"time":1,"sequence":"12","price":"-1"}}', "bad_price"),
        ('{"code":"200000","data":{"time":1,"price":"1.0"}}', "bad_sequence"),
        ("x" * 20000, "oversized"),
    ],
)
def test_bad_level1_answers_raise_level1_error_with_reason(body, reason):
    with pytest.raises(kucoin.Level1Error) as info:
        kucoin.parse_level1("PLGR-USDT", body)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(code="400100"),
        lambda b: b.pop("data"),
        lambda b: b["data"].pop("token"),
        lambda b: b["data"].update(instanceServers=[]),
        lambda b: b["data"]["instanceServers"][0].update(endpoint="http://x/"),
        lambda b: b["data"]["instanceServers"][0].update(pingInterval="18000"),
        lambda b: b["data"]["instanceServers"][0].update(pingTimeout=0),
    ],
)
def test_bad_bullets_raise(mutate):
    body = json.loads(json.dumps(BULLET))
    mutate(body)
    with pytest.raises(kucoin.BulletError):
        kucoin.parse_bullet(json.dumps(body))


def test_bullet_not_json():
    with pytest.raises(kucoin.BulletError, match="not JSON"):
        kucoin.parse_bullet(b"<html>502</html>")


def test_subscribe_splits_into_topics_of_at_most_100():
    symbols = [f"S{i}-USDT" for i in range(250)]
    frames = kucoin.subscribe_messages("r", symbols)
    topics = [json.loads(frame)["topic"] for _, frame in frames]
    assert [len(t.split(":")[1].split(",")) for t in topics] == [100, 100, 50]
    assert all(json.loads(f)["type"] == "subscribe" and json.loads(f)["response"] for _, f in frames)
    assert len({frame_id for frame_id, _ in frames}) == 3


def test_ping_message_is_kucoin_json_ping():
    assert json.loads(kucoin.ping_message("42")) == {"id": "42", "type": "ping"}
