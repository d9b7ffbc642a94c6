"""deploy/prometheus and deploy/grafana against the real tools: promtool checks and unit-tests
the rules; a real Prometheus scrapes a running service every second with the rules loaded,
and PledgeWsFeedDown stays inactive while prices flow and fires once the exchange goes silent.
Every metric the dashboard and the rules name exists in the service's /metrics."""

import json
import re
import shutil
import subprocess
import time
import urllib.parse

import pytest

from tests.support import ROOT, Client, Process, free_port, http, wait_until

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "pledge-ws.json"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("prometheus") is None or shutil.which("promtool") is None,
        reason="prometheus/promtool not installed (Debian's 'prometheus' package; make test installs it)",
    ),
]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in re.findall(r"\bpledge_ws_[a-z_]+", expr)}


def _exposed(metrics_text: str) -> set[str]:
    """Sample names and declared families (a labelled counter with no child yet has only those)."""
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            family, kind = line.split()[2:4]
            names.update({family, f"{family}_total"} if kind == "counter" else {family})
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_promtool_checks_and_unit_tests_the_rules():
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", "alerts.test.yml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    for name in ("prometheus.yml", "compose.yml"):  # on the host, and in deploy/compose.yaml's network
        config = subprocess.run(
            ["promtool", "check", "config", name], cwd=RULES.parent, capture_output=True, text=True, timeout=30
        )
        assert config.returncode == 0, config.stdout + config.stderr


def _rules_for_test(tmp_path) -> str:
    """The shipped rules, with PledgeWsFeedDown's `for: 1m` shortened to 2s for a test."""
    text = RULES.read_text()
    block = re.search(r"- alert: PledgeWsFeedDown\n.*?\n        for: 1m\n", text, re.S)
    assert block, "PledgeWsFeedDown with `for: 1m` not found in alerts.yml"
    path = tmp_path / "alerts.yml"
    path.write_text(text.replace(block.group(0), block.group(0).replace("for: 1m", "for: 2s")))
    return str(path)


def _query(base: str, promql: str) -> dict:
    status, body = http("GET", f"{base}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert status == 200 and body["status"] == "success", (promql, status, body)
    return body["data"]


def _alerts(base: str) -> dict[str, str]:
    status, body = http("GET", f"{base}/api/v1/alerts")
    assert status == 200, body
    return {alert["labels"]["alertname"]: alert["state"] for alert in body["data"]["alerts"]}


def test_every_runbook_url_names_a_section_of_the_operations_doc():
    import yaml

    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (ROOT / "docs" / "operations.md").read_text().splitlines()
        if line.startswith("#")
    }
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md" and anchor in headings, (rule["alert"], url)


def _prometheus(tmp_path, target_port: int, rules: str | None = None) -> tuple[Process, str]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    rule_files = f"rule_files: [{rules}]\n" if rules else ""
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n" + rule_files + "scrape_configs:\n"
        "  - job_name: pledge-ws\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
    )
    prometheus = Process(
        "prometheus",
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: http("GET", f"{base}/-/ready", timeout=1)[0] == 200, 30, what="prometheus ready")
    return prometheus, base


def _value(base: str, promql: str) -> float:
    result = _query(base, promql)["result"]
    return float(result[0]["value"][1]) if result else float("nan")


def test_two_workers_process_series_and_the_delivery_histogram_in_a_real_prometheus(
    service_factory, simulator, redis, tmp_path
):
    svc = service_factory(
        KUCOIN_API_URL=simulator.url,
        REDIS_URL=redis.url,
        WEB_CONCURRENCY="2",
        SYMBOLS="PLGR-USDT",
        MAX_CONNECTIONS="500",
        REST_FALLBACK_INTERVAL="0",
        HEARTBEAT_TIMEOUT="300",
    )
    svc.wait_ready()
    prometheus, base = _prometheus(tmp_path, svc.port)
    clients = []
    try:
        wait_until(lambda: _value(base, "count(pledge_ws_process_open_fds)") == 2, 20, what="both workers' fds")
        fds = _value(base, "sum(pledge_ws_process_open_fds)")
        rss = _query(base, "pledge_ws_process_resident_memory_bytes")["result"]
        assert len(rss) == 2 and all(float(r["value"][1]) > 10e6 for r in rss)
        assert _value(base, "count(pledge_ws_process_cpu_seconds)") == 2
        assert _value(base, "sum(pledge_ws_connections_limit)") == 1000  # MAX_CONNECTIONS x 2 workers
        from pledge_ws import __version__

        assert _value(base, f'pledge_ws_build_info{{version="{__version__}"}}') == 1

        clients.extend(Client(svc.ws_url) for _ in range(100))
        wait_until(lambda: _value(base, "sum(pledge_ws_connections)") == 100, 20, what="100 connections")
        wait_until(
            lambda: _value(base, "sum(pledge_ws_process_open_fds)") >= fds + 100, 20, what="fds up by the clients"
        )
        assert _value(base, "sum(pledge_ws_upgrade_seconds_count)") >= 100

        delivered = _value(base, "sum(pledge_ws_tick_delivery_seconds_count)")
        for n in range(5):
            simulator.set_price("PLGR-USDT", f"0.00610{n}")
            for client in clients[:3]:
                client.wait_price(f"0.00610{n}")
        # Every tick is handed to the sockets by both workers: two observations per tick.
        wait_until(
            lambda: _value(base, "sum(pledge_ws_tick_delivery_seconds_count)") == delivered + 10,
            10,
            what="ten delivery observations",
        )
        p99 = _value(base, "histogram_quantile(0.99, sum by (le) (pledge_ws_tick_delivery_seconds_bucket))")
        assert 0 <= p99 < 1.0, p99
        age = _value(base, "time() - max(pledge_ws_last_tick_timestamp_seconds)")
        assert 0 <= age < 10, age
    finally:
        for client in clients:
            client.close()
        prometheus.stop()


def test_real_prometheus_scrapes_and_feed_down_fires(service, simulator, tmp_path):
    for n in range(3):
        simulator.set_price("PLGR-USDT", f"0.00310{n}")
    metrics_text = service.get("/metrics")[1]
    missing = (_names(_dashboard_exprs()) | _names([RULES.read_text()])) - _exposed(metrics_text)
    assert not missing, f"dashboard/rules name metrics /metrics does not have: {sorted(missing)}"

    prometheus, base = _prometheus(tmp_path, service.port, _rules_for_test(tmp_path))
    try:
        wait_until(
            lambda: _query(base, 'max by (job) (pledge_ws_exchange_connected{job="pledge-ws"})')["result"],
            20,
            what="a scrape of the service",
        )
        # While prices flow: the rules evaluate cleanly and none is pending or firing.
        for _ in range(3):
            simulator.set_price("PLGR-USDT", "0.003200")
            time.sleep(1)
        groups = http("GET", f"{base}/api/v1/rules")[1]["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == 10 and all(rule["health"] == "ok" for rule in rules), rules
        assert _alerts(base) == {}, _alerts(base)
        for expr in _dashboard_exprs():  # every panel's query is valid PromQL on real data
            _query(base, expr.replace("$__rate_interval", "1m").replace("$job", ".*"))

        silenced = time.monotonic()
        simulator.control("silent", seconds=60)
        wait_until(lambda: _alerts(base).get("PledgeWsFeedDown") == "firing", 40, what="PledgeWsFeedDown firing")
        print(f"PledgeWsFeedDown firing {time.monotonic() - silenced:.1f} s after the exchange went silent")
    finally:
        prometheus.stop()
