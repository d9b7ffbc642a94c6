"""Many workers, two hosts' worth of gunicorn, one Redis, one exchange connection."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pledge_ws.cluster import keys
from tests.support import Client, Instances, Service, Simulator, wait_until

FAILOVER_BOUND = 8.0  # seconds from kill -9 of the leader to prices on surviving workers


@pytest.fixture
def cluster(redis):
    sim = Simulator(rate=0, symbols="PLGR-USDT,BTC-USDT")
    instances = Instances(sim.url, redis.url, ("PLGR-USDT", "BTC-USDT"))
    try:
        yield sim, instances.start().services, instances.clients
    finally:
        instances.stop()
        sim.stop()


def _worker_pids(svc: Service, want: int, min_connections: int = 0) -> set[int]:
    """Ask /readyz until `want` distinct workers answered (each request lands on one)."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(seen) < want:
        status, body = svc.get("/readyz")
        if status == 200 and body["connections"] >= min_connections:
            seen[body["pid"]] = body["connections"]
    return set(seen)


def _connect_spread(services: list[Service], clients: list[Client], per_service: int) -> None:
    for svc in services:
        # Connect concurrently, as browsers do: the kernel then spreads accepts over workers.
        with ThreadPoolExecutor(per_service) as pool:
            clients.extend(pool.map(Client, [svc.ws_url] * per_service))
        assert len(_worker_pids(svc, 2, min_connections=1)) == 2, "all clients landed on one worker"


def _all_receive(clients: list[Client], sim: Simulator, price: str, timeout: float = 5) -> list[dict]:
    sim.set_price("PLGR-USDT", price)
    return [client.wait_price(price, timeout=timeout) for client in clients]


def test_one_exchange_connection_and_same_prices_in_order_on_all_workers(cluster):
    sim, services, clients = cluster
    assert sim.state()["connections"] == 1
    _connect_spread(services, clients, per_service=12)
    seqs_by_client: list[list[int]] = [[] for _ in clients]
    for n in range(5):
        frames = _all_receive(clients, sim, f"0.00{3000 + n}")
        assert len({f["seq"] for f in frames}) == 1  # everyone got the same tick
        for seqs, frame in zip(seqs_by_client, frames, strict=True):
            seqs.append(int(frame["seq"]))
    for seqs in seqs_by_client:
        assert seqs == sorted(set(seqs))
    assert sim.state()["connections"] == 1
    assert sim.state()["connections_total"] == 1
    # /metrics aggregates both workers of an instance, whichever worker answers.
    for svc in services:
        for _ in range(4):
            assert svc.metric("pledge_ws_connections") == 12
        received = sum(svc.metric("pledge_ws_ticks_received_total", f'source="{src}"') for src in ("bus", "exchange"))
        assert received >= 2 * 5  # both workers counted every tick (the leader's from the exchange)
    assert sum(svc.metric("pledge_ws_leader") for svc in services) == 1


def test_kill_leader_worker_fails_over_within_bound(cluster, redis):
    sim, services, clients = cluster
    _connect_spread(services, clients, per_service=12)
    _all_receive(clients, sim, "0.004000")
    leader = redis.get(keys.LEADER)
    assert leader is not None
    leader_pid = int(leader.split(":")[1])
    os.kill(leader_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    # Clients on the killed worker lose their connection; every other one keeps it.
    survivors = []
    for client in clients:
        try:
            client.send("ping")
            client.recv(timeout=2)
            survivors.append(client)
        except Exception:
            pass
    assert 0 < len(survivors) < len(clients)
    wait_until(lambda: redis.get(keys.LEADER) not in (None, leader), FAILOVER_BOUND, what="a new leader")
    wait_until(lambda: sim.state()["connections"] == 1 and sim.state()["connections_total"] == 2, 5, what="one link")
    price = "0.004001"
    deadline = killed_at + FAILOVER_BOUND
    while time.monotonic() < deadline:
        sim.set_price("PLGR-USDT", price)
        try:
            survivors[0].wait_price(price, timeout=0.5)
            break
        except AssertionError:
            price = f"0.00{int(price[4:]) + 1}"
    else:
        raise AssertionError("prices did not resume within the failover bound")
    failover = time.monotonic() - killed_at
    for client in survivors[1:]:
        client.wait_price(price, timeout=3)
    print(f"failover: prices resumed {failover:.2f}s after kill -9 of the leader")
    assert failover < FAILOVER_BOUND
    assert sim.state()["connections"] == 1


def test_redis_restart_resumes_prices_without_restarting_the_app(cluster, redis):
    sim, services, clients = cluster
    _connect_spread(services, clients, per_service=12)
    _all_receive(clients, sim, "0.005000")
    redis.kill()
    wait_until(lambda: services[0].get("/readyz")[0] == 503, 10, what="/readyz to report the outage")
    status, body = services[0].get("/price")
    assert status == 200 and body["price"] == "0.005000"
    redis.start()
    for svc in services:
        svc.wait_ready(timeout=20)
    _all_receive(clients, sim, "0.005001", timeout=10)
    wait_until(lambda: redis.get("plgr_price") == "0.005001", 5, what="plgr_price after restart")
    # A follower that did not see the short outage may take the free lock on the empty Redis
    # first; the incumbent then steps down at its next renewal. Past the TTL: exactly one link.
    wait_until(lambda: sim.state()["connections"] == 1, 5, what="one exchange connection")
    time.sleep(4)
    assert sim.state()["connections"] == 1
