import shutil

import pytest

from tests.support import RedisServer, Service, Simulator


def pytest_collection_modifyitems(config, items):
    # Integration tests need redis-server; say so plainly instead of failing obscurely.
    if shutil.which("redis-server") is None:
        skip = pytest.mark.skip(reason="redis-server not installed (make test installs it)")
        for item in items:
            if "redis" in item.fixturenames:
                item.add_marker(skip)


@pytest.fixture
def redis():
    server = RedisServer().start()
    yield server
    server.kill()


@pytest.fixture
def simulator():
    sim = Simulator(rate=0)
    yield sim
    sim.stop()


@pytest.fixture
def service_factory():
    started: list[Service] = []

    def start(**env: str) -> Service:
        port = int(env["PORT"]) if "PORT" in env else None
        service = Service(env, port=port)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def service(service_factory, simulator, redis):
    """One worker against the simulator and a real Redis, as in production."""
    svc = service_factory(
        KUCOIN_API_URL=simulator.url,
        REDIS_URL=redis.url,
        SYMBOLS="PLGR-USDT,BTC-USDT",
    )
    svc.wait_ready()
    return svc
