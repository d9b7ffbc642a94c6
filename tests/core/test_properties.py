"""Property-based tests: hostile input never raises out of the parsers, and rejected input
changes no state."""

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pledge_ws.core.book import PriceBook
from pledge_ws.core.protocol import Invalid, Ping, Subscribe, Unsubscribe, parse_client_message
from pledge_ws.core.ticks import SequenceGuard, Tick, TickError
from pledge_ws.exchange import kucoin

SYMBOLS = ("PLGR-USDT", "BTC-USDT")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

frame_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["message", "welcome", "pong", "ack", "error", "notice"]) | json_values,
        "topic": st.sampled_from(["/market/ticker:PLGR-USDT", "/market/ticker:", "/x"]) | json_values,
        "data": st.fixed_dictionaries(
            {
                "sequence": st.from_regex(r"[0-9]{1,25}", fullmatch=True) | json_values,
                "price": st.from_regex(r"-?[0-9]{0,6}(\.[0-9]{0,8})?", fullmatch=True) | json_values,
                "time": st.integers(min_value=-(10**20), max_value=10**20) | json_values,
            }
        )
        | json_values,
    }
)

deep = st.integers(min_value=1, max_value=50_000).map(lambda n: "[" * n + "]" * n)


def _state(guard: SequenceGuard, book: PriceBook) -> tuple:
    return (dict(guard._last), [t.to_json() for t in book.all()])


def _ingest(text: str, guard: SequenceGuard, book: PriceBook) -> None:
    """The feed's accept path, minus I/O."""
    try:
        event = kucoin.parse_frame(text)
    except kucoin.FrameError:
        return
    if isinstance(event, Tick) and guard.accept(event):
        book.add(event)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), frame_like.map(json.dumps), json_values.map(json.dumps), deep))
def test_exchange_frames_never_raise_and_rejects_change_nothing(text):
    guard, book = SequenceGuard(), PriceBook()
    guard.accept(Tick("PLGR-USDT", "1", "100", 1))
    book.add(Tick("PLGR-USDT", "1", "100", 1))
    before = _state(guard, book)
    try:
        event = kucoin.parse_frame(text)
    except kucoin.FrameError:
        _ingest(text, guard, book)
        assert _state(guard, book) == before
        return
    assert isinstance(event, kucoin.Welcome | kucoin.Pong | kucoin.Ack | kucoin.ExchangeError | kucoin.Other | Tick)
    if isinstance(event, Tick):
        assert event.price.replace(".", "").isdigit() and float(event.price) > 0
        assert event.sequence.isdigit() and 0 < event.ts < 10**14


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps), deep, st.binary(max_size=100).map(repr)))
def test_bullet_parser_raises_only_bullet_error(text):
    with contextlib.suppress(kucoin.BulletError):
        kucoin.parse_bullet(text)


level1_data = st.fixed_dictionaries(
    {},
    optional={
        "time": st.one_of(st.integers(), st.text(max_size=5), st.none()),
        "sequence": st.one_of(st.text(max_size=12), st.integers(), st.none()),
        "price": st.one_of(st.text(max_size=12), st.floats(), st.none()),
        "size": st.text(max_size=5),
    },
)
level1_bodies = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    deep,
    st.fixed_dictionaries({"code": st.sampled_from(["200000", "429000", 200000]), "data": level1_data}).map(json.dumps),
)


@settings(max_examples=200, deadline=None)
@given(level1_bodies)
def test_level1_parser_raises_only_level1_error_and_keeps_strings(text):
    try:
        tick = kucoin.parse_level1("PLGR-USDT", text)
    except kucoin.Level1Error:
        return
    raw = json.loads(text)["data"]
    assert (tick.price, tick.sequence, tick.ts, tick.source) == (raw["price"], raw["sequence"], raw["time"], "rest")


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps), deep))
def test_bus_messages_raise_only_tick_error(text):
    with contextlib.suppress(TickError):
        Tick.from_json(text)


ops = st.fixed_dictionaries(
    {"op": st.sampled_from(["subscribe", "unsubscribe", "x"]) | json_values, "symbols": json_values}
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), ops.map(json.dumps), json_values.map(json.dumps), deep))
def test_client_messages_never_raise_and_only_name_configured_symbols(text):
    message = parse_client_message(text, SYMBOLS)
    assert isinstance(message, Ping | Subscribe | Unsubscribe | Invalid)
    if isinstance(message, Subscribe | Unsubscribe):
        assert message.symbols and set(message.symbols) <= set(SYMBOLS)
    if isinstance(message, Invalid):
        assert 0 < len(message.reason) <= 80
