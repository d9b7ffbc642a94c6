"""The container image, built from the Dockerfile and run with podman, as an operator would.

podman runs with runc (crun fails on this host's cgroup layout) and host networking for both
the build and the run: the default bridge network makes netavark install NAT rules that
conntrack every loopback packet on the machine (the benchmarks ran about twice as slow). No
registry is reachable here, so scripts/podman-standin-base.sh provides a local stand-in for
python:3.11-slim when no image of that name exists; the Dockerfile is built unchanged. The
build mounts the host's CA bundle read-only over the image's (Debian's pip reads it), so pip
and apt work behind this host's TLS-intercepting egress; nothing of it stays in the image.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import websocket

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
    assert "/healthz" in " ".join(inspected["Healthcheck"]["Test"])
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
