"""deploy/k8s validated offline: every overlay renders with ``kubectl kustomize``, every built-in
object validates against the Kubernetes schemas bundled by kubernetes-validate (strict: no
unknown field), the Prometheus Operator objects carry what the operator needs, and the
PrometheusRule is the alert rules file, generated (one source) and passing promtool.

The local overlay is also run for real, under ``podman kube play``: tests/deploy/test_image.py.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest
import yaml

from tests.support import ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["base", "overlays/production", "overlays/local"]
GRACEFUL_TIMEOUT = 10  # pledge_ws/gunicorn_conf.py
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed"),
]


def render(overlay: str) -> list[dict]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(K8S / overlay)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_and_every_object_validates(overlay):
    import kubernetes_validate

    docs = render(overlay)
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "ConfigMap"} <= kinds
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            assert doc["kind"] in ("ServiceMonitor", "PrometheusRule") and doc["spec"], doc["kind"]
            continue
        kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises on any schema error


def test_the_base_has_every_object_an_operator_expects():
    docs = render("base")
    assert {d["kind"] for d in docs} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "PrometheusRule",
    }
    hpa = by_kind(docs, "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "pledge_ws_connections"
    monitor = by_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = by_kind(docs, "Service")
    assert {"http", "metrics"} == {p["name"] for p in service["spec"]["ports"]}


def test_the_pod_drains_inside_its_grace_period_and_runs_locked_down():
    deployment = by_kind(render("base"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # Endpoints removed first (preStop), then every 1001 at SIGTERM, gunicorn's graceful_timeout
    # at most for the workers to go, and a margin before the kubelet's SIGKILL.
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + GRACEFUL_TIMEOUT + 1
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
    config = by_kind(render("base"), "ConfigMap")["data"]
    assert config["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")  # on the writable mount
    redis_url = next(e for e in container["env"] if e["name"] == "REDIS_URL")
    assert redis_url["valueFrom"]["secretKeyRef"] == {"name": "pledge-ws-redis", "key": "url"}
    assert container["envFrom"] == [{"configMapRef": {"name": "pledge-ws"}}]
    assert {"requests", "limits"} <= container["resources"].keys()


def test_every_config_variable_in_the_config_map_is_one_the_service_reads():
    from pledge_ws.cli import variables

    config = by_kind(render("base"), "ConfigMap")["data"]
    assert set(config) - {"PROMETHEUS_MULTIPROC_DIR"} <= set(variables())


def _generator():
    spec = importlib.util.spec_from_file_location("gen_prometheusrule", ROOT / "scripts" / "gen-prometheusrule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_prometheus_rule_is_generated_from_the_alert_rules(tmp_path):
    generator = _generator()
    committed = (K8S / "base" / "prometheusrule.yaml").read_text()
    assert committed == generator.render(generator.RULES.read_text()), "run scripts/gen-prometheusrule.py"
    rule = yaml.safe_load(committed)
    source = yaml.safe_load(generator.RULES.read_text())
    assert rule["spec"]["groups"] == source["groups"]
    rebased = yaml.safe_load(generator.render(generator.RULES.read_text(), "https://docs.example/pledge-ws"))
    urls = [r["annotations"]["runbook_url"] for g in rebased["spec"]["groups"] for r in g["rules"]]
    assert urls and all(u.startswith("https://docs.example/pledge-ws/docs/operations.md#") for u in urls)
    if shutil.which("promtool"):
        rules_file = tmp_path / "rules.yml"
        rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        checked = subprocess.run(["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_local_overlay_is_one_pod_on_the_host_network_with_the_local_image():
    docs = render("overlays/local")
    assert {d["kind"] for d in docs} == {"ConfigMap", "Secret", "Deployment"}
    deployment = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1 and pod["hostNetwork"] is True
    assert pod["containers"][0]["image"] == "localhost/pledge-ws:test"
    assert "ports" not in pod["containers"][0]
