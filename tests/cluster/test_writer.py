"""The Redis writer and the bus with Redis's data left in place: a failed write, a stale bus tick.

The outage tests restart Redis, which wipes what was written before the failure, so they
cannot tell a kept batch from a dropped one. Here Redis keeps its data: ``CLIENT PAUSE WRITE``
holds the writer's pipeline past its 1 s socket timeout, so the write fails (redis-py drops the
connection, and Redis discards what that connection sent) while everything stays in place.
"""

from __future__ import annotations

import json
import threading
import time

import redis as redis_lib

from pledge_ws.cluster import keys
from tests.support import Client, wait_until

PLGR = "PLGR-USDT"


class BusTap:
    """Every tick published on ``pledge_ws:ticks``, as (seq, price), heard by a test subscriber."""

    def __init__(self, port: int) -> None:
        self.pubsub = redis_lib.Redis(port=port, socket_timeout=5).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(keys.TICKS_CHANNEL)
        self.ticks: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                tick = json.loads(message["data"])
                if tick["symbol"] == PLGR:
                    self.ticks.append((tick["seq"], tick["price"]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.pubsub.close()


def stream_seqs(client: redis_lib.Redis) -> set[str]:
    return {entry_id.decode().split("-")[0] for entry_id, _ in client.xrange(keys.stream_key(PLGR))}


def test_a_failed_write_keeps_its_batch_for_the_stream_the_keys_and_the_bus(service, simulator, redis):
    admin = redis_lib.Redis(port=redis.port, socket_timeout=5)
    tap = BusTap(redis.port)
    try:
        first = simulator.set_price(PLGR, "0.005000")
        wait_until(lambda: first["sequence"] in stream_seqs(admin), 5, what="the first tick in the Stream")
        errors = service.metric("pledge_ws_redis_errors_total", 'op="write"')
        admin.execute_command("CLIENT", "PAUSE", "2500", "WRITE")  # data stays; writes wait
        paused = [simulator.set_price(PLGR, "0.005001")]
        time.sleep(0.3)
        paused.append(simulator.set_price(PLGR, "0.005002"))
        wait_until(lambda: redis.get("plgr_price") == "0.005002", 15, what="plgr_price after the pause")
        assert service.metric("pledge_ws_redis_errors_total", 'op="write"') > errors  # a write did fail
        wanted = {tick["sequence"] for tick in paused}
        wait_until(lambda: wanted <= stream_seqs(admin), 5, what="the failed batch in the Stream")
        wait_until(lambda: wanted <= {seq for seq, _ in tap.ticks}, 5, what="the failed batch on the bus")
        latest = json.loads(admin.get(keys.price_key(PLGR)))
        assert (latest["seq"], latest["price"]) == (paused[-1]["sequence"], "0.005002")
    finally:
        tap.close()


def test_an_older_tick_over_the_bus_after_a_newer_one_is_dropped(service, simulator, redis):
    """Published as a leader would (its term): the newer tick is kept by the book and the
    clients, the older one reaches neither."""
    admin = redis_lib.Redis(port=redis.port, socket_timeout=5)
    client = Client(service.ws_url)
    base = simulator.set_price(PLGR, "0.007000")
    client.wait_price("0.007000")
    term = int(admin.get(keys.TERM))
    newer, older = int(base["sequence"]) + 100, int(base["sequence"]) + 50

    def publish(seq: int, price: str) -> None:
        tick = {"symbol": PLGR, "price": price, "seq": str(seq), "ts": base["time"] + 1, "source": "ws", "term": term}
        assert admin.publish(keys.TICKS_CHANNEL, json.dumps(tick)) >= 1

    publish(newer, "0.007100")
    assert client.wait_price("0.007100")["seq"] == str(newer)
    publish(older, "0.006900")
    publish(newer + 1, "0.007200")  # a marker: the older one, if delivered, would come first
    assert client.next_price()["data"] == "0.007200"
    status, body = service.get(f"/price?symbol={PLGR}")
    assert status == 200 and (body["price"], body["seq"]) == ("0.007200", str(newer + 1))
    seqs = [t["seq"] for t in service.get(f"/price/history?symbol={PLGR}&limit=10")[1]["ticks"]]
    assert str(older) not in seqs
    client.close()
