"""The worker's tick path without I/O: nothing is started, so no sockets are opened."""

from pledge_ws.config import load_settings
from pledge_ws.core.ticks import Tick
from pledge_ws.worker.runtime import Runtime


def _runtime(**env: str) -> Runtime:
    return Runtime(load_settings({"SYMBOLS": "PLGR-USDT", **env}))


def _tick(seq: int, price: str) -> Tick:
    return Tick("PLGR-USDT", price, str(seq), 1_700_000_000_000 + seq)


def test_out_of_order_ticks_are_dropped_and_counted():
    rt = _runtime()
    rt.intake.on_exchange_tick(_tick(10, "1.0"))
    rt.intake.on_exchange_tick(_tick(9, "2.0"))
    rt.intake.on_exchange_tick(_tick(10, "3.0"))
    assert rt.book.get("PLGR-USDT").price == "1.0"
    assert rt.metrics.ticks_dropped.labels(reason="out_of_order")._value.get() == 2


def test_bad_print_is_held_back_unless_the_next_tick_confirms_it():
    rt = _runtime(MAX_PRICE_JUMP="0.5")
    rt.intake.on_exchange_tick(_tick(1, "1.00"))
    rt.intake.on_exchange_tick(_tick(2, "9.00"))  # +800%: a bad print
    assert rt.book.get("PLGR-USDT").price == "1.00"
    rt.intake.on_exchange_tick(_tick(3, "1.10"))  # back to normal: the spike never reached anyone
    assert rt.book.get("PLGR-USDT").price == "1.10"
    assert [t.price for t in rt.book.history("PLGR-USDT", 10)] == ["1.00", "1.10"]
    rt.intake.on_exchange_tick(_tick(4, "2.00"))  # the market really moves...
    rt.intake.on_exchange_tick(_tick(5, "2.05"))  # ...and the next print confirms it
    assert rt.book.get("PLGR-USDT").price == "2.05"
    assert rt.metrics.ticks_dropped.labels(reason="price_jump")._value.get() == 2


def test_jump_guard_off_by_default():
    rt = _runtime()
    rt.intake.on_exchange_tick(_tick(1, "1.00"))
    rt.intake.on_exchange_tick(_tick(2, "100.00"))
    assert rt.book.get("PLGR-USDT").price == "100.00"


def test_unsubscribed_symbols_from_the_bus_are_ignored():
    rt = _runtime()
    rt.intake.on_bus_tick(Tick("BTC-USDT", "1.0", "1", 1))
    assert rt.book.get("BTC-USDT") is None


def test_each_price_frame_is_encoded_once_for_the_book_and_the_hub():
    rt = _runtime()
    rt.intake.on_exchange_tick(_tick(1, "1.00"))
    entry, _offered = rt.hub._queue.get_nowait()
    assert entry is rt.book.latest()[0]  # the hub sends the very bytes the book keeps
    assert b'"data":"1.00"' in entry.frame
