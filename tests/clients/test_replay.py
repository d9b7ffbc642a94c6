"""Recovery on a real deployment: two instances of two gevent workers, one Redis, the simulator.

Every test compares the exact (seq, price) series a client got with the series the simulator
made (its /_sim/price answers), so a hole, a duplicate or a reordering fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pledge_ws.cluster import keys
from pledge_ws.core.book import HISTORY_LIMIT
from tests.support import Client, RedisServer, Service, Simulator, upgrade_status, wait_until
from tests.support.recovery import Prices, collect, split

pytestmark = pytest.mark.integration

PLGR, BTC = "PLGR-USDT", "BTC-USDT"


class Cluster:
    def __init__(self) -> None:
        self.redis = RedisServer().start()
        self.sim = Simulator(rate=0, symbols=f"{PLGR},{BTC}")
        env = {"KUCOIN_API_URL": self.sim.url, "REDIS_URL": self.redis.url, "WEB_CONCURRENCY": "2"}
        self.services = [Service({**env, "SYMBOLS": f"{PLGR},{BTC}"}) for _ in range(2)]
        for svc in self.services:
            svc.wait_ready(timeout=20)
        self.prices = Prices(self.sim)
        for symbol in (PLGR, BTC):
            self.prices.walk(symbol, 2)
            self.wait_stored(symbol)

    def wait_stored(self, symbol: str) -> None:
        """Until the last price set for ``symbol`` is in Redis (written after its history entry)."""
        seq = self.prices.series[symbol][-1][0]

        def stored() -> bool:
            return json.loads(self.redis.get(keys.price_key(symbol)) or "{}").get("seq") == seq

        wait_until(stored, 5, what=f"{symbol} {seq} in Redis")

    def snapshot(self, svc: Service, symbols: list[str]) -> dict[str, str]:
        """Connect, take the snapshot (the last seq of each symbol), disconnect."""
        client = Client(f"{svc.ws_url}?symbols={','.join(symbols)}")
        try:
            frames = collect(client, dict.fromkeys(symbols, 1))
        finally:
            client.close()
        assert not [f for f in frames if f["code"] == 2]  # no since, no code 2
        return {f["symbol"]: f["seq"] for f in frames}

    def stop(self) -> None:
        self.prices.close()
        for svc in self.services:
            svc.stop()
        self.sim.stop()
        self.redis.kill()


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (make test installs it)")
    cluster = Cluster()
    yield cluster
    cluster.stop()


def since_query(last: dict[str, str]) -> str:
    return f"symbols={','.join(last)}&since={','.join(f'{s}:{seq}' for s, seq in last.items())}"


def assert_recovered(frames: list[dict], symbol: str, expected: list[tuple[str, str]]) -> None:
    status, series = split(frames, symbol)
    assert status == [{"code": 2, "data": "recovered", "symbol": symbol, "count": len(expected)}], status
    assert series == expected
    first_price = min(i for i, f in enumerate(frames) if f.get("symbol") == symbol and f["code"] == 0)
    assert frames.index(status[0]) < first_price


@pytest.mark.parametrize("symbols", [[PLGR], [PLGR, BTC]], ids=["one-symbol", "two-symbols"])
@pytest.mark.parametrize("target", [0, 1], ids=["same-instance", "other-instance"])
def test_reconnect_gets_exactly_the_missed_prices_then_live(cluster, symbols, target):
    last = cluster.snapshot(cluster.services[0], symbols)
    missed = {symbol: cluster.prices.walk(symbol, 3) for symbol in symbols}
    for symbol in symbols:
        cluster.wait_stored(symbol)
    client = Client(f"{cluster.services[target].ws_url}?{since_query(last)}")
    try:
        frames = collect(client, {s: 3 for s in symbols})
        for symbol in symbols:
            assert_recovered(frames, symbol, missed[symbol])
        for symbol in symbols:  # then live, with no duplicate at the seam
            seq = cluster.prices.set(symbol, "0.002999" if symbol == PLGR else "61234.5")
            assert client.next_price(symbol=symbol)["seq"] == seq
    finally:
        client.close()


def test_a_replay_of_history_limit_ticks_and_one_too_old(cluster):
    last = cluster.snapshot(cluster.services[0], [PLGR])[PLGR]
    started = time.monotonic()
    missed = cluster.prices.walk(PLGR, HISTORY_LIMIT)
    cluster.wait_stored(PLGR)
    print(f"set {HISTORY_LIMIT} prices in {time.monotonic() - started:.2f}s")
    for svc in cluster.services:
        client = Client(f"{svc.ws_url}?{since_query({PLGR: last})}")
        try:
            frames = collect(client, {PLGR: HISTORY_LIMIT}, timeout=20)
            assert_recovered(frames, PLGR, missed)
        finally:
            client.close()
    # One tick further back than the window: not recovered, then the snapshot.
    client = Client(f"{cluster.services[1].ws_url}?{since_query({PLGR: str(int(last) - 1)})}")
    try:
        frames = collect(client, {PLGR: 1})
        assert frames == [
            {"code": 2, "data": "not recovered", "symbol": PLGR},
            {"code": 0, "data": missed[-1][1], "symbol": PLGR, "seq": missed[-1][0], "ts": frames[1]["ts"]},
        ]
        seq = cluster.prices.set(PLGR, "0.002998")
        assert client.next_price()["seq"] == seq
    finally:
        client.close()
    assert cluster.services[1].metric("pledge_ws_recoveries_total", 'result="not_recovered"') >= 1


def test_fifty_clients_recover_at_once_while_prices_move(cluster):
    svcs = cluster.services
    clients = 50
    last = cluster.snapshot(svcs[0], [PLGR])
    missed = cluster.prices.walk(PLGR, 5)
    cluster.wait_stored(PLGR)
    during: list[tuple[str, str]] = []

    def move() -> None:  # prices that arrive while the recoveries are being sent
        setter = Prices(cluster.sim)
        for n in range(5):
            setter.set(PLGR, f"0.00{2800 + n}")
            time.sleep(0.02)
        setter.close()
        during.extend(setter.series[PLGR])

    def recover(n: int) -> list[dict]:
        client = Client(f"{svcs[n % 2].ws_url}?{since_query(last)}")
        try:
            return collect(client, {PLGR: 10}, timeout=20)
        finally:
            client.close()

    mover = threading.Thread(target=move)
    mover.start()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(recover, range(clients)))
    mover.join()
    expected = missed + during
    counts = []
    for frames in results:
        status, series = split(frames, PLGR)
        assert series == expected
        assert len(status) == 1 and status[0]["data"] == "recovered" and 5 <= status[0]["count"] <= 10
        counts.append(status[0]["count"])
    print(f"recovered counts (the rest came live): {sorted(counts)}")


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        (f"symbols={PLGR}&since={PLGR}", "malformed item"),
        (f"symbols={PLGR}&since={PLGR}:abc", "malformed item"),
        (f"symbols={PLGR}&since=", "SYMBOL:SEQ"),
        (f"symbols={PLGR}&since={BTC}:5", f"{BTC} is not in symbols"),
        (f"since={BTC}:5", f"{BTC} is not in symbols"),  # no symbols: the primary only
        (f"symbols={PLGR},{BTC}&since={PLGR}:1,{PLGR}:2", "given twice"),
    ],
)
def test_bad_since_is_refused_at_the_upgrade(cluster, query, problem):
    status, body = upgrade_status(cluster.services[0].port, query)
    assert status == 400
    assert problem in body["error"]


def test_since_for_the_primary_without_symbols_is_accepted(cluster):
    assert upgrade_status(cluster.services[1].port, f"since={PLGR}:1")[0] == 101


def test_recovery_across_a_kill_9_of_the_leader(cluster):
    svcs, redis = cluster.services, cluster.redis
    last = cluster.snapshot(svcs[0], [PLGR, BTC])
    before = {symbol: cluster.prices.walk(symbol, 3) for symbol in (PLGR, BTC)}
    for symbol in (PLGR, BTC):
        cluster.wait_stored(symbol)
    leader = redis.get(keys.LEADER)
    assert leader is not None
    total = cluster.sim.state()["connections_total"]
    os.kill(int(leader.split(":")[1]), signal.SIGKILL)
    wait_until(lambda: redis.get(keys.LEADER) not in (None, leader), 10, what="a new leader")
    wait_until(
        lambda: cluster.sim.state()["connections"] == 1 and cluster.sim.state()["connections_total"] == total + 1,
        10,
        what="the new leader's exchange link",
    )
    time.sleep(0.5)  # the new leader's subscription is acked before prices move
    after = {symbol: cluster.prices.walk(symbol, 3, start=3100) for symbol in (PLGR, BTC)}
    for symbol in (PLGR, BTC):
        cluster.wait_stored(symbol)
    for svc in svcs:
        client = Client(f"{svc.ws_url}?{since_query(last)}")
        try:
            frames = collect(client, {PLGR: 6, BTC: 6})
            for symbol in (PLGR, BTC):
                assert_recovered(frames, symbol, before[symbol] + after[symbol])
        finally:
            client.close()
