import shutil

import pytest

from tests.support import RedisServer, Service, Simulator

# Fixtures that start real processes: a test using one is an integration test whether or not
# its module says so (``pytest -m "not integration"`` runs the unit tests alone, in seconds).
PROCESS_FIXTURES = frozenset({"redis", "simulator", "service", "service_factory"})


def pytest_collection_modifyitems(config, items):
    no_redis = shutil.which("redis-server") is None
    for item in items:
        if PROCESS_FIXTURES & set(item.fixturenames) or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.integration)
        # Integration tests need redis-server; say so plainly instead of failing obscurely.
        if no_redis and "redis" in item.fixturenames:
            item.add_marker(pytest.mark.skip(reason="redis-server not installed (make test installs it)"))


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
