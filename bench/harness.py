"""What the benchmark scripts share: their processes (own process groups, pinned to a CPU,
killed at the end), /proc sampling of CPU and memory, and the pieces they build or start
(the C load generator, the Go peer, a fresh simulator).

Run the scripts as ``python bench/<script>.py`` from the checkout with the project installed
in the interpreter (``make test`` or ``make bench`` installs it in ``.venv``): they import
``harness`` from their own folder and ``pledge_ws`` as an installed package.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BUILD = BENCH / ".build"
LOGS = BUILD / "logs"
LOADGEN = BUILD / "loadgen"
PY = sys.executable
TICK_RATE = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

_children: list[subprocess.Popen[bytes]] = []


# ----------------------------------------------------------------- processes


def raise_fd_limit() -> int:
    """Children inherit the soft limit; 10k sockets need more than the usual 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pinned(cpu: int | str, argv: list[str]) -> list[str]:
    """Prefix with taskset so server and load generator never share a core."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > int(str(cpu).split(",")[-1]):
        return ["taskset", "-c", str(cpu), *argv]
    print(f"warning: cannot pin to CPU {cpu}; running unpinned", file=sys.stderr)
    return argv


def spawn(
    argv: list[str], log_name: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (so the whole tree can be killed) with output to a log."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / log_name, "wb")  # noqa: SIM115 - closed when the child is reaped
    proc = subprocess.Popen(
        argv, cwd=cwd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # the group may outlive its leader (e.g. a gunicorn worker)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    if proc in _children:
        _children.remove(proc)


def adopt(proc: subprocess.Popen[Any]) -> None:
    """Count a child started elsewhere (its own session) among those :func:`stop_all` kills."""
    _children.append(proc)


def stop_all() -> None:
    """Kill every child this script started, newest first."""
    for proc in reversed(list(_children)):
        stop(proc, grace=3.0)


def free_port() -> int:
    """A port the kernel just handed out on loopback (racy, but fine for a bench)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until something accepts TCP on 127.0.0.1:port, or fail fast if the child died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s")


# ------------------------------------------------------------ /proc sampling


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc/*/stat ppid links."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_busy() -> dict[str, float]:
    """Per-CPU busy seconds from /proc/stat, softirq apart.

    Loopback TCP delivery runs largely in softirq on the *sending* CPU, which no
    process is charged for: on CPU 0 it is mostly the server's fan-out cost. The
    rest of CPU 0's busy time beyond the server is other work on a shared machine.
    """
    out: dict[str, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        v = [int(x) for x in vals]
        out[name] = (sum(v[:8]) - v[3] - v[4] - v[6]) / CLK_TCK  # all but idle, iowait, softirq
        out[name + "_softirq"] = v[6] / CLK_TCK
    return out


def sample(root: int) -> dict[str, Any]:
    """CPU seconds (utime+stime) and RSS (kB) summed over the server's process tree."""
    cpu_ticks, rss_kb, n = 0, 0, 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        cpu_ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss_kb += int(line.split()[1])
        n += 1
    return {"t": time.monotonic(), "cpu_s": cpu_ticks / CLK_TCK, "rss_kb": rss_kb, "processes": n, "busy": cpu_busy()}


# ------------------------------------------------------------------- pieces


def build_loadgen() -> None:
    """Compile the load generator when missing or older than its source."""
    src = BENCH / "loadgen.c"
    if LOADGEN.exists() and LOADGEN.stat().st_mtime >= src.stat().st_mtime:
        return
    BUILD.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-O2", "-o", str(LOADGEN), str(src)], check=True, timeout=120)


GORILLA = BUILD / "gorilla-peer"


def build_gorilla() -> None:
    """Build the Go peer from bench/peers/gorilla with Debian's packaged gorilla/websocket (no network)."""
    src = BENCH / "peers" / "gorilla" / "main.go"
    if GORILLA.exists() and GORILLA.stat().st_mtime >= src.stat().st_mtime:
        return
    if not shutil.which("go") or not Path("/usr/share/gocode/src/github.com/gorilla/websocket").is_dir():
        raise FileNotFoundError("the gorilla peer needs golang-go and golang-github-gorilla-websocket-dev (apt)")
    env = {**os.environ, "GOPATH": "/usr/share/gocode", "GO111MODULE": "off", "GOFLAGS": ""}
    env.setdefault("GOCACHE", str(BUILD / "gocache"))
    subprocess.run(
        ["go", "build", "-o", str(GORILLA), "./bench/peers/gorilla"], cwd=ROOT, env=env, check=True, timeout=300
    )


def start_simulator(tag: str) -> tuple[subprocess.Popen[bytes], int]:
    """A fresh exchange per run at TICK_RATE, pinned beside the load generator (CPU 1)."""
    port = free_port()
    argv = [PY, "-m", "pledge_ws.simulator", "--port", str(port), "--rate", str(TICK_RATE)]
    proc = spawn(pinned(1, argv), f"{tag}-simulator.log")
    wait_port(port, proc, 15)
    return proc, port


def netavark_tables() -> list[str]:
    """podman's NETAVARK nft tables: with them loopback traffic is conntracked (benchmarks ~2x slower)."""
    nft = shutil.which("nft")
    if not nft:
        return []
    try:
        out = subprocess.run([nft, "list", "tables"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if "netavark" in line.lower()]


def http_json(method: str, url: str, body: object | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    """One HTTP call on loopback: the status and the answer (JSON parsed, else text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def start_pledge_ws(tag: str, sim_port: int, env: dict[str, str] | None = None, cpu: int | str = 0) -> tuple[Any, int]:
    """gunicorn with the service's own configuration against the simulator, pinned; waits until
    ``/readyz`` says ready (30 s at most). Returns the process and its port."""
    port = free_port()
    gunicorn = str(Path(PY).with_name("gunicorn"))
    full = {"PORT": str(port), "KUCOIN_API_URL": f"http://127.0.0.1:{sim_port}", **(env or {})}
    proc = spawn(pinned(cpu, [gunicorn, "-c", "gunicorn.conf.py", "app:app"]), f"{tag}-server.log", env=full)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pledge-ws exited with {proc.returncode} (see {LOGS / f'{tag}-server.log'})")
        with contextlib.suppress(OSError):
            if http_json("GET", f"http://127.0.0.1:{port}/readyz", timeout=1)[0] == 200:
                return proc, port
        time.sleep(0.2)
    raise TimeoutError("pledge-ws not ready within 30 s")


def metric_value(port: int, name: str, labels: str = "") -> float:
    """One series of the service's ``/metrics`` (0 when absent)."""
    _, text = http_json("GET", f"http://127.0.0.1:{port}/metrics")
    key = f"{name}{{{labels}}}" if labels else name
    for line in str(text).splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0
