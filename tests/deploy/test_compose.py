"""deploy/compose.yaml describes docs/ha.md's topology, and its app settings load as written."""

import re

import yaml

from pledge_ws.config import load_settings
from tests.support import ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"


def _defaults(value: str) -> str:
    """Compose's ${VAR:-default}, resolved to the default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_runs_sentinel_redis_and_two_instances_of_two_workers():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"redis-master", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"} <= services.keys()
    apps = [name for name, service in services.items() if name.startswith("app-")]
    assert len(apps) == 2
    for name in apps:
        env = {key: _defaults(str(value)) for key, value in services[name]["environment"].items()}
        settings = load_settings(env)  # the configuration the containers start with is valid
        assert settings.web_concurrency == 2
        assert settings.redis_url is not None and settings.redis_url.startswith("redis+sentinel://")
        assert settings.metrics_port == 9100
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
    sentinel = " ".join(services["sentinel-1"]["command"])
    assert "sentinel monitor pledge redis-master 6379 2" in sentinel and "--sentinel" in sentinel
    assert "down-after-milliseconds pledge 1000" in sentinel
