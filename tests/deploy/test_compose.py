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


def test_compose_starts_each_service_once_what_it_needs_is_healthy():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("redis-master", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"):
        assert services[name]["healthcheck"]["test"], name
    assert services["sentinel-1"]["depends_on"] == {"redis-master": {"condition": "service_healthy"}}
    for app in ("app-1", "app-2"):
        needs = services[app]["depends_on"]
        assert needs == {f"sentinel-{n}": {"condition": "service_healthy"} for n in (1, 2, 3)}, needs


def test_the_observability_profile_has_prometheus_with_the_rules_and_grafana_with_the_dashboard():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["profiles"] == grafana["profiles"] == ["observability"]
    assert {v.split(":")[0] for v in prometheus["volumes"]} == {"./prometheus/compose.yml", "./prometheus/alerts.yml"}
    scrape = yaml.safe_load((COMPOSE.parent / "prometheus" / "compose.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["app-1:9100", "app-2:9100"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    assert mounts["./grafana/pledge-ws.json"] == "/var/lib/grafana/dashboards/pledge-ws.json"
    provider = yaml.safe_load((COMPOSE.parent / "grafana/provisioning/dashboards/pledge-ws.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((COMPOSE.parent / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
