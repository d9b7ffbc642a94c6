"""The container image, built from the Dockerfile and run with podman, as an operator would.

podman runs with runc (crun fails on this host's cgroup layout) and host networking for both
the build and the run: the default bridge network makes netavark install NAT rules that
conntrack every loopback packet on the machine (the benchmarks ran about twice as slow). No
registry is reachable here, so scripts/podman-standin-base.sh provides a local stand-in for
python:3.11-slim when no image of that name exists; the Dockerfile is built unchanged. The
build mounts the host's CA bundle read-only over the image's (Debian's pip reads it), so pip
and apt work behind this host's TLS-intercepting egress; nothing of it stays in the image.
"""

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import websocket
import yaml

from pledge_ws import __version__
from tests.support import ROOT, Client, free_port, http, wait_until

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs", "--events-backend=file"]
IMAGE = "localhost/pledge-ws:test"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Explicit limits this host permits (its hard limits: nofile 20000; podman's default nproc
# would be refused otherwise with "error setting rlimits").
ULIMITS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096"]


def _podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _why_not() -> str | None:
    if shutil.which("podman") is None or shutil.which("runc") is None:
        return "podman/runc not installed (make test installs them on Debian)"
    if os.geteuid() != 0:
        return "podman runs rootful here (rootless needs subuid ranges this machine kind lacks)"
    try:
        info = _podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman info failed: {exc}"
    if info.returncode != 0:
        return f"podman cannot run containers here: {info.stderr.strip()[:200]}"
    return None


_REASON = _why_not()
pytestmark = [pytest.mark.integration, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]


def _netavark_tables() -> list[str]:
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10, check=False)
    return [line for line in done.stdout.splitlines() if "netavark" in line.lower()]


@pytest.fixture(scope="module")
def image():
    assert not _netavark_tables(), "NETAVARK nft tables exist before the test (someone used podman's bridge)"
    base = subprocess.run(
        ["bash", str(ROOT / "scripts" / "podman-standin-base.sh")], capture_output=True, text=True, timeout=600
    )
    assert base.returncode == 0, base.stdout + base.stderr
    started = time.monotonic()
    build = [
        "build",
        "--format=docker",  # the OCI format drops HEALTHCHECK
        "--pull=never",
        "--layers=false",
        "--network=host",
        "-t",
        IMAGE,
    ]
    if HOST_CA.exists():
        build += ["-v", f"{HOST_CA}:{HOST_CA}:ro"]
    _podman(*build, str(ROOT), timeout=900)
    print(f"image built in {time.monotonic() - started:.1f} s")
    yield IMAGE
    assert not _netavark_tables(), "the test left NETAVARK nft tables behind"


def test_image_has_healthcheck_nonroot_user_and_no_compiler(image):
    inspected = json.loads(_podman("image", "inspect", image).stdout)[0]
    assert inspected["Config"]["User"] == "10001:10001"
    assert inspected["Healthcheck"]["Test"] == ["CMD", "pledge-ws", "--healthcheck"]
    probe = "for c in gcc cc c++ x86_64-linux-gnu-gcc; do command -v $c && exit 1; done; id -u; id -g"
    done = _podman("run", "--rm", "--network=host", *ULIMITS, "--entrypoint", "sh", image, "-c", probe)
    assert done.stdout.split() == ["10001", "10001"], done.stdout
    # The package installed from the hashed locks, its command on the PATH; no source tree.
    version = _podman("run", "--rm", "--network=host", *ULIMITS, image, "pledge-ws", "--version").stdout.strip()
    assert version == f"pledge-ws {__version__}"
    listing = _podman("run", "--rm", "--network=host", *ULIMITS, "--entrypoint", "ls", image, "-A", "/app")
    assert listing.stdout.strip() == "", listing.stdout


def test_container_serves_stops_cleanly_and_logs_json(image, simulator, tmp_path):
    port = free_port()
    name = f"pledge-ws-test-{os.getpid()}-{port}"
    log_path = tmp_path / "container.log"
    _podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network=host",
        *ULIMITS,
        "--log-driver=k8s-file",
        f"--log-opt=path={log_path}",
        "-e",
        f"PORT={port}",
        "-e",
        f"KUCOIN_API_URL={simulator.url}",
        "-e",
        "LOG_FORMAT=json",
        image,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http("GET", f"{base}/healthz", timeout=1)[0] == 200, 30, what="the container's /healthz")
        wait_until(lambda: http("GET", f"{base}/readyz", timeout=1)[0] == 200, 15, what="the feed subscribed")
        last = simulator.set_price("PLGR-USDT", "0.004321")
        _, body = wait_until(
            lambda: (r := http("GET", f"{base}/price"))[0] == 200 and r[1]["price"] == "0.004321" and r,
            10,
            what="/price",
        )
        assert (body["price"], body["seq"], body["ts"]) == ("0.004321", last["sequence"], last["time"])
        # The server itself (gunicorn's master, PID 1 inside), seen from the host: uid 10001.
        pid = _podman("inspect", name, "--format", "{{.State.Pid}}").stdout.strip()
        uid_line = next(
            line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")
        )
        assert uid_line.split()[1:] == ["10001"] * 4, uid_line
        assert _podman("healthcheck", "run", name, check=False).returncode == 0

        client = Client(f"ws://127.0.0.1:{port}/ws")
        client.wait_price("0.004321")
        started = time.monotonic()
        _podman("stop", "--time", "10", name, timeout=30)
        elapsed = time.monotonic() - started
        client.ws.settimeout(5)
        frame = None
        for _ in range(100):
            opcode, frame = client.ws.recv_data_frame()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
        assert frame is not None and int.from_bytes(frame.data[:2], "big") == 1001
        exit_code = _podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        assert exit_code == "0" and elapsed < 10, (exit_code, elapsed)
        print(f"podman stop took {elapsed:.2f} s")
    finally:
        _podman("rm", "--force", name, check=False)
    lines = [line.split(" ", 3)[3] for line in log_path.read_text().splitlines() if line.count(" ") >= 3]
    assert len(lines) >= 5, lines
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "logger", "message", "pid"} <= record.keys(), line
    assert any(json.loads(line)["message"].startswith("Shutting down") for line in lines)


def _local_manifests(port: int, metrics_port: int, sim_url: str, redis_url: str) -> tuple[str, dict[str, str]]:
    """deploy/k8s/overlays/local rendered, pointed at this test's ports, and its Secret's data
    (podman 4.3 reads a secretKeyRef from a podman secret: a JSON object of base64 values)."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy/k8s/overlays/local")], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    (secret,) = [doc for doc in docs if doc["kind"] == "Secret"]
    data = {"url": base64.b64encode(redis_url.encode()).decode()}
    assert set(secret["data"]) == set(data)
    text = yaml.safe_dump_all([doc for doc in docs if doc["kind"] != "Secret"])
    for old, new in (("18000", str(port)), ("19100", str(metrics_port)), ("http://127.0.0.1:19000", sim_url)):
        text = text.replace(old, new)
    return text, data


def test_the_local_kubernetes_overlay_runs_under_podman_kube_play(image, simulator, redis, tmp_path):
    """The manifests as podman plays them: probes pass, prices flow to a client, and stopping the
    pod as the kubelet does (SIGTERM, then up to terminationGracePeriodSeconds) gives that client
    its 1001 with the reconnect hint well inside the grace period.

    podman 4.3.1's `kube down` stops pods with a zero timeout, i.e. SIGKILL at once
    (PlayKubeDown: PodStop with empty options), so no process can close its clients there: the
    graceful stop is `podman pod stop --time <grace>`, then `kube down` removes what is left."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (with kustomize) not installed")
    port, metrics_port = free_port(), free_port()
    manifests, secret = _local_manifests(port, metrics_port, simulator.url, redis.url)
    grace = yaml.safe_load_all(manifests)
    deployment = next(doc for doc in grace if doc["kind"] == "Deployment")
    grace_seconds = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    play = tmp_path / "local.yaml"
    play.write_text(manifests)
    (tmp_path / "secret.json").write_text(json.dumps(secret))
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]\n')
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    pod = "pledge-ws-pod-0"
    _podman("pod", "rm", "--force", pod, check=False)
    _podman("secret", "rm", "pledge-ws-redis", check=False)
    _podman("secret", "create", "pledge-ws-redis", str(tmp_path / "secret.json"))
    log_path = tmp_path / "pod.log"
    try:
        done = subprocess.run(
            [*PODMAN, "kube", "play", f"--log-opt=path={log_path}", str(play)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        base, metrics = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
        wait_until(lambda: http("GET", f"{base}/readyz", timeout=1)[0] == 200, 30, what="readiness (/readyz)")
        container = f"{pod}-pledge-ws"
        wait_until(
            lambda: _podman("healthcheck", "run", container, check=False).returncode == 0, 20, what="the liveness probe"
        )
        _, detail = wait_until(lambda: (r := http("GET", f"{metrics}/readyz"))[0] == 200 and r, 15, what="ready")
        assert detail["leader"] and detail["redis"] == {"bus": True}, detail  # the details: METRICS_PORT
        last = simulator.set_price("PLGR-USDT", "0.004444")
        client = Client(f"ws://127.0.0.1:{port}/ws")
        assert client.wait_price("0.004444")["seq"] == last["sequence"]
        text = http("GET", f"{metrics}/metrics")[1]
        pids = {line.split('pid="')[1].split('"')[0] for line in text.splitlines() if "process_open_fds{" in line}
        assert len(pids) == 2, text[:500]  # WEB_CONCURRENCY 2: one series per worker
        started = time.monotonic()
        stop = subprocess.Popen([*PODMAN, "pod", "stop", "--time", str(grace_seconds), pod], env=env)
        client.ws.settimeout(grace_seconds)
        frame = None
        for _ in range(100):
            opcode, frame = client.ws.recv_data_frame()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
        closed_after = time.monotonic() - started
        assert frame is not None and int.from_bytes(frame.data[:2], "big") == 1001
        assert frame.data[2:] == b"server shutting down; reconnect_window_ms=5000"
        assert stop.wait(grace_seconds + 10) == 0
        stopped_after = time.monotonic() - started
        assert closed_after < grace_seconds and stopped_after < grace_seconds, (closed_after, stopped_after)
        print(
            f"kube play: 1001 after {closed_after:.2f} s, stopped after {stopped_after:.2f} s (grace {grace_seconds} s)"
        )
        down = subprocess.run([*PODMAN, "kube", "down", str(play)], capture_output=True, text=True, timeout=60, env=env)
        assert down.returncode == 0, down.stderr
        assert _podman("pod", "exists", pod, check=False).returncode != 0
    finally:
        _podman("pod", "rm", "--force", pod, check=False)
        _podman("secret", "rm", "pledge-ws-redis", check=False)
    lines = [line.split(" ", 3)[3] for line in log_path.read_text().splitlines() if line.count(" ") >= 3]
    assert any('"event": "shutdown"' in line for line in lines)
