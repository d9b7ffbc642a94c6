"""Fan-out benchmark: pledge-ws against its peers at 1k/5k/10k clients per worker.

Why this shape: the issue asks whether one gevent worker can push every tick to
10,000 clients. Each server gets the same exchange feed (a fresh simulator at
10 ticks/s), is pinned to CPU 0, and is driven by the C load generator pinned
to CPU 1, so the server's CPU share and the clients' latency are not polluted
by the client side. Everything this script starts runs in its own process
group and is killed at the end, also on Ctrl-C or an exception.

    .venv/bin/python bench/run.py [--quick] [--servers pledge-ws,naive-flask-sock,websockets]
                                  [--clients 1000,5000,10000] [--stalled 0.05]

Writes bench/results/latest.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BUILD = BENCH / ".build"
LOGS = BUILD / "logs"
LOADGEN = BUILD / "loadgen"
PY = sys.executable
SERVERS = ("pledge-ws", "naive-flask-sock", "websockets", "pledge-ws-2w", "gorilla")
DEFAULT_SERVERS = SERVERS[:3]  # pledge-ws-2w (two workers + Redis, both cores) on request
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


@dataclass
class Server:
    """How to launch one server kind on a port against a simulator."""

    name: str
    port: int
    sim_port: int
    proc: subprocess.Popen[bytes] | None = None
    redis: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    max_accept: int | None = None

    def start(self, tag: str) -> None:
        """Pin to CPU 0 and start; the env mirrors pledge-ws's configuration."""
        api = f"http://127.0.0.1:{self.sim_port}"
        self.env = {"PORT": str(self.port), "KUCOIN_API_URL": api, "WEB_CONCURRENCY": "1", "HEARTBEAT_TIMEOUT": "30"}
        gunicorn = str(Path(PY).with_name("gunicorn"))
        if self.name == "pledge-ws":
            if not (ROOT / "app.py").exists() or not (ROOT / "gunicorn.conf.py").exists():
                raise FileNotFoundError("pledge-ws not present yet (app.py / gunicorn.conf.py missing)")
            conf = "gunicorn.conf.py"
            if self.max_accept is not None:  # accepts per wake-up of the listener (bench/gunicorn_max_accept.py)
                conf, self.env["BENCH_MAX_ACCEPT"] = "bench/gunicorn_max_accept.py", str(self.max_accept)
            argv = [gunicorn, "-c", conf, "app:app"]
            cwd = ROOT
        elif self.name == "naive-flask-sock":
            argv = [gunicorn, "-k", "gevent", "-w", "1", "--worker-connections", "20000", "--backlog", "2048"]
            argv += ["-b", f"127.0.0.1:{self.port}", "--chdir", str(BENCH / "peers"), "naive_flask_sock:app"]
            cwd = BENCH / "peers"
        elif self.name == "gorilla":
            build_gorilla()
            argv, cwd = [str(GORILLA)], ROOT
        elif self.name == "websockets":
            argv, cwd = [PY, str(BENCH / "peers" / "websockets_broadcast.py"), "--port", str(self.port)], ROOT
        elif self.name == "pledge-ws-2w":
            # Scale-out: two workers sharing one exchange link through a fresh redis-server.
            # They may use both cores, so this row shares CPU 1 with the load generator.
            redis_port = free_port()
            redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
            self.redis = spawn(pinned(1, [*redis_argv, "--appendonly", "no"]), f"{tag}-redis.log")
            wait_port(redis_port, self.redis, 10)
            self.env.update(WEB_CONCURRENCY="2", REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
            argv, cwd = [gunicorn, "-c", "gunicorn.conf.py", "app:app"], ROOT
            self.proc = spawn(pinned("0,1", argv), f"{tag}-server.log", env=self.env, cwd=cwd)
            return
        else:
            raise ValueError(f"unknown server {self.name}")
        self.proc = spawn(pinned(0, argv), f"{tag}-server.log", env=self.env, cwd=cwd)

    def wait_first_price(self, timeout: float = 30.0) -> float:
        """Connect a plain client and wait for a code-0 frame: the feed is live end to end."""
        assert self.proc is not None
        wait_port(self.port, self.proc, timeout)
        t0 = time.monotonic()
        deadline = t0 + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws", timeout=2)
                last = RuntimeError("connected, but no code-0 frame yet")
                try:
                    while time.monotonic() < deadline:
                        with contextlib.suppress(websocket.WebSocketTimeoutException):
                            frame = json.loads(ws.recv())
                            if frame.get("code") == 0:
                                return time.monotonic() - t0
                finally:
                    ws.close()
            except (OSError, websocket.WebSocketException, ValueError) as exc:
                last = exc
                time.sleep(0.3)
        raise TimeoutError(f"{self.name}: no price within {timeout}s ({last!r})")


def run_loadgen(
    port: int, clients: int, args: argparse.Namespace, stalled: float, duration: float, server_pid: int, tag: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Run loadgen on CPU 1; sample the server at its EVENT lines (connected, window start/end)."""
    argv = [str(LOADGEN), "--url", f"ws://127.0.0.1:{port}/ws", "--clients", str(clients)]
    argv += ["--ramp-per-sec", str(args.ramp_per_sec), "--warmup", str(args.warmup), "--duration", str(duration)]
    argv += ["--stalled-fraction", str(stalled), "--ping-interval", str(args.ping_interval), "--json"]
    argv += ["--max-pending", str(args.max_pending), "--ramp-grace", str(args.ramp_grace)]
    if stalled and args.stalled_pings:
        argv.append("--stalled-pings")
    if args.busy_poll:
        argv.append("--busy-poll")
    idle = sample(server_pid)
    time.sleep(1.0)  # the server's idle CPU rate (ticking to one client) is subtracted from the ramp's
    samples: dict[str, dict[str, Any]] = {"idle": idle, "before": sample(server_pid)}
    profiler = start_profiler(server_pid, tag) if args.profile else None
    proc = subprocess.Popen(pinned(1, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _children.append(proc)
    events: list[str] = []

    def read_events() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            events.append(line)
            if line.startswith("EVENT "):
                name = line.split()[1]
                if name in ("connected", "window_start", "window_end"):
                    samples[name] = sample(server_pid)
                    if name == "connected" and profiler is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(profiler.pid, signal.SIGINT)  # py-spy writes its profile on SIGINT
                    if name == "connected":
                        print(f"    {line[6:]}", flush=True)

    chunks: list[bytes] = []

    def read_result() -> None:
        assert proc.stdout is not None
        chunks.append(proc.stdout.read())

    # two readers, one per pipe (communicate() would steal the EVENT lines)
    readers = [threading.Thread(target=read_events, daemon=True), threading.Thread(target=read_result, daemon=True)]
    for t in readers:
        t.start()
    hard = (
        clients / args.ramp_per_sec + args.ramp_grace + 10 + args.warmup + duration + 10
    )  # + ramp-grace, connect-timeout
    try:
        proc.wait(timeout=hard + 15)
    finally:
        stop(proc, grace=2)
    for t in readers:
        t.join(timeout=5)
    if profiler is not None:
        stop(profiler, grace=15)
    out = b"".join(chunks)
    samples["end"] = sample(server_pid)
    (LOGS / f"{tag}-loadgen.log").write_text("\n".join(events) + "\n")
    try:
        result = json.loads(out.decode())
    except ValueError as exc:
        raise RuntimeError(f"loadgen gave no JSON (rc={proc.returncode}): {events[-3:]}") from exc
    return result, samples


def start_profiler(server_pid: int, tag: str) -> subprocess.Popen[bytes] | None:
    """py-spy on the (first) worker for the ramp only: where an upgrade's CPU goes."""
    pyspy = Path(PY).with_name("py-spy")
    workers = [p for p in process_tree(server_pid) if p != server_pid] or [server_pid]
    if not pyspy.exists():
        print("warning: --profile needs py-spy (pip install py-spy==0.4.1)", file=sys.stderr)
        return None
    out = LOGS / f"{tag}-ramp.pyspy.txt"
    argv = [
        str(pyspy),
        "record",
        "--pid",
        str(workers[0]),
        "--format",
        "raw",
        "--rate",
        "250",
        "--nonblocking",
        "-o",
        str(out),
    ]
    return spawn(pinned(1, argv), f"{tag}-pyspy.log")


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


def derive(lg: dict[str, Any], s: dict[str, dict[str, Any]], clients: int) -> dict[str, Any]:
    """Numbers for the table: server CPU % over the window, kB per connection, tick coverage."""
    d: dict[str, Any] = {"client_model": lg.get("client_model", "epoll-sleep")}
    if "connected" in s and "idle" in s and lg.get("clients_connected"):
        # CPU the server spent during the ramp beyond its idle rate, per connection: the upgrade
        # plus the growing fan-out of the ticks that arrived meanwhile (ramp_fanout_share says how much).
        idle_rate = (s["before"]["cpu_s"] - s["idle"]["cpu_s"]) / max(1e-3, s["before"]["t"] - s["idle"]["t"])
        ramp_wall = s["connected"]["t"] - s["before"]["t"]
        ramp_cpu = s["connected"]["cpu_s"] - s["before"]["cpu_s"] - idle_rate * ramp_wall
        d["ramp_cpu_us_per_conn"] = 1e6 * ramp_cpu / lg["clients_connected"]
        d["ramp_server_cpu_pct"] = 100 * (s["connected"]["cpu_s"] - s["before"]["cpu_s"]) / ramp_wall
    if "window_start" in s and "window_end" in s:
        wall = s["window_end"]["t"] - s["window_start"]["t"]
        d["server_cpu_pct"] = 100 * (s["window_end"]["cpu_s"] - s["window_start"]["cpu_s"]) / wall if wall else None
        b0, b1 = s["window_start"]["busy"], s["window_end"]["busy"]
        if wall and "cpu0" in b0 and d["server_cpu_pct"] is not None:
            # anything else that ran on the server's core during the window: noise from the shared machine
            d["cpu0_other_pct"] = max(0.0, 100 * (b1["cpu0"] - b0["cpu0"]) / wall - d["server_cpu_pct"])
            d["cpu0_softirq_pct"] = 100 * (b1["cpu0_softirq"] - b0["cpu0_softirq"]) / wall
            if "cpu1" in b0:
                d["cpu1_busy_pct"] = 100 * (b1["cpu1"] - b0["cpu1"]) / wall
    if "connected" in s and lg.get("clients_connected"):
        d["kb_per_conn"] = (s["connected"]["rss_kb"] - s["before"]["rss_kb"]) / lg["clients_connected"]
    d["server_rss_mb_end"] = s["end"]["rss_kb"] / 1024
    window = lg.get("window_seconds") or 0
    d["ticks_expected"] = round(window * TICK_RATE)
    seen = lg.get("ticks_seen") or 0
    # ticks_seen only counts what some client got; a stuck server would look perfect without this
    d["tick_coverage"] = seen / d["ticks_expected"] if d["ticks_expected"] else None
    lcpu = lg.get("loadgen_cpu_fraction")
    d["loadgen_cpu_pct"] = 100 * lcpu if lcpu is not None else None
    d["evictions"] = (lg.get("closed_by_server") or {}).get("stalled", 0)
    # loadgen's core also carries the simulator and the kernel's ACK work; near 100 % it adds latency itself
    d["loadgen_saturated"] = lcpu is not None and lcpu > 0.8
    return d


def one_run(server: str, clients: int, stalled: float, duration: float, args: argparse.Namespace) -> dict[str, Any]:
    """Fresh simulator + fresh server + one loadgen pass; everything stopped afterwards."""
    tag = f"{server}-{clients}{'-stalled' if stalled else ''}"
    print(f"== {tag}: {clients} clients, stalled {stalled:g}, window {duration:g}s", flush=True)
    rec: dict[str, Any] = {"server": server, "clients": clients, "stalled_fraction": stalled, "duration": duration}
    sim = srv = None
    try:
        sim, sim_port = start_simulator(tag)
        srv = Server(server, free_port(), sim_port, max_accept=args.max_accept)
        srv.start(tag)
        rec["first_price_s"] = round(srv.wait_first_price(), 3)
        assert srv.proc is not None
        time.sleep(1)  # let the first-price client's close settle before the baseline sample
        lg, samples = run_loadgen(srv.port, clients, args, stalled, duration, srv.proc.pid, tag)
        rec["server_alive_at_end"] = srv.proc.poll() is None
        rec.update(loadgen=lg, samples=samples, derived=derive(lg, samples, clients))
    except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
        print(f"   error: {rec['error']}", flush=True)
    finally:
        for p in (srv.proc if srv else None, srv.redis if srv else None, sim):
            if p is not None:
                stop(p)
    time.sleep(1)
    return rec


# -------------------------------------------------------------------- report


def fmt(v: Any, spec: str = ".1f", suffix: str = "") -> str:
    """Format a number or show an em dash for missing values."""
    return "—" if v is None else f"{v:{spec}}{suffix}"


def table(runs: list[dict[str, Any]]) -> str:
    """Markdown table, one row per run."""
    head = (
        "| server | clients | ramp s | stalled | delivered | ticks seen/expected | p50 ms | p99 ms | max ms "
        "| server CPU % | CPU0 softirq % | KB/conn | loadgen CPU % | evictions | CPU0 other % "
        "| ramp µs/conn | ramp p99 ms | client |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        if "error" in r:
            rows.append(
                f"| {r['server']} | {r['clients']} | {r['stalled_fraction']:g} | error: {r['error'][:60]} |" + " |" * 14
            )
            continue
        lg, d = r["loadgen"], r["derived"]
        stalled = f"{lg['stalled_connected']}" if r["stalled_fraction"] else "0"
        ev = f"{d['evictions']}/{lg['stalled_connected']}" if r["stalled_fraction"] else "—"
        rows.append(
            f"| {r['server']} | {lg['clients_connected']}/{r['clients']} | {fmt(lg.get('ramp_seconds'))} | {stalled} | "
            f"{fmt(lg['delivered_fraction'], '.4f')} | {lg['ticks_seen']}/{d['ticks_expected']} | "
            f"{fmt(lg['latency_p50_ms'], '.2f')} | {fmt(lg['latency_p99_ms'], '.2f')} | "
            f"{fmt(lg['latency_max_ms'], '.1f')} | "
            f"{fmt(d.get('server_cpu_pct'))} | {fmt(d.get('cpu0_softirq_pct'))} | {fmt(d.get('kb_per_conn'))} | "
            f"{fmt(d.get('loadgen_cpu_pct'))}{' (saturated!)' if d.get('loadgen_saturated') else ''} | "
            f"{ev} | {fmt(d.get('cpu0_other_pct'))} | {fmt(d.get('ramp_cpu_us_per_conn'), '.0f')} | "
            f"{fmt(lg.get('ramp_latency_p99_ms'), '.1f')} | "
            f"{d.get('client_model')} |"
        )
    return "\n".join(rows)


def stalled_comparison(runs: list[dict[str, Any]], stalled_clients: int) -> list[dict[str, Any]]:
    """Others' p99 with stalled clients present vs the same server's clean run at the same size."""
    out = []
    for r in runs:
        if not r["stalled_fraction"] or "error" in r:
            continue
        base = next(
            (
                b
                for b in runs
                if b["server"] == r["server"]
                and b["clients"] == stalled_clients
                and not b["stalled_fraction"]
                and "error" not in b
            ),
            None,
        )
        p99 = r["loadgen"]["latency_p99_ms"]
        bp99 = base["loadgen"]["latency_p99_ms"] if base else None
        out.append(
            {
                "server": r["server"],
                "clients": r["clients"],
                "stalled": r["loadgen"]["stalled_connected"],
                "p99_ms": p99,
                "baseline_p99_ms": bp99,
                "p99_ratio": p99 / bp99 if p99 and bp99 else None,
                "delivered_fraction": r["loadgen"]["delivered_fraction"],
                "baseline_delivered_fraction": base["loadgen"]["delivered_fraction"] if base else None,
                "evictions": r["derived"]["evictions"],
            }
        )
    return out


def stalled_table(rows: list[dict[str, Any]]) -> str:
    """Markdown for the stalled scenario."""
    out = [
        "| server | clients | stalled | others' p99 ms | clean p99 ms | ratio | delivered (clean) | evictions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        out.append(
            f"| {c['server']} | {c['clients']} | {c['stalled']} | {fmt(c['p99_ms'], '.2f')} | "
            f"{fmt(c['baseline_p99_ms'], '.2f')} | {fmt(c['p99_ratio'], '.2f', 'x')} | "
            f"{fmt(c['delivered_fraction'], '.4f')} ({fmt(c['baseline_delivered_fraction'], '.4f')}) | "
            f"{c['evictions']}/{c['stalled']} |"
        )
    return "\n".join(out)


def meta(args: argparse.Namespace, fd_limit: int) -> dict[str, Any]:
    """What the numbers depend on."""
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_head": git.stdout.strip() or None,
        "host": platform.node(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "fd_limit": fd_limit,
        "tick_rate": TICK_RATE,
        "pinning": {"server": 0, "loadgen": 1, "simulator": 1},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """CLI; --quick is one 1,000-client, 10 s pass per server."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="1000 clients, 10 s window, no stalled scenario unless --stalled"
    )
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS))
    ap.add_argument("--clients", default=None, help="comma list (default 1000,5000,10000)")
    ap.add_argument(
        "--stalled", type=float, default=None, help="stalled fraction for the extra scenario (default 0.05; 0 = skip)"
    )
    ap.add_argument("--stalled-clients", type=int, default=1000)
    ap.add_argument(
        "--stalled-duration", type=float, default=40.0, help="window of the stalled run: evictions need time to happen"
    )
    ap.add_argument(
        "--stalled-pings",
        action="store_true",
        help="stalled clients keep pinging (never reading), so only slow-consumer handling can evict them",
    )
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=None, help="window seconds (default 15, --quick 10)")
    ap.add_argument("--ramp-per-sec", type=float, default=1000.0)
    ap.add_argument("--ping-interval", type=float, default=5.0)
    ap.add_argument("--max-pending", type=int, default=200, help="handshakes in flight (loadgen)")
    ap.add_argument("--ramp-grace", type=float, default=30.0, help="seconds past N/R before unstarted clients fail")
    ap.add_argument(
        "--busy-poll", action="store_true", help="loadgen never sleeps in epoll (models remote clients; see README)"
    )
    ap.add_argument(
        "--max-accept", type=int, default=None, help="pledge-ws only: gevent's accepts per wake-up (default: gevent's)"
    )
    ap.add_argument("--profile", action="store_true", help="py-spy the worker during the ramp (bench/.build/logs)")
    ap.add_argument("--allow-netavark", action="store_true", help="run even while podman's nft tables exist")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json")
    a = ap.parse_args(argv)
    a.clients = [int(x) for x in (a.clients or ("1000" if a.quick else "1000,5000,10000")).split(",") if x]
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    for s in a.servers:
        if s not in SERVERS:
            ap.error(f"unknown server {s!r}; choose from {', '.join(SERVERS)}")
    if a.stalled is None:
        a.stalled = 0.0 if a.quick else 0.05
    if a.duration is None:
        a.duration = 10.0 if a.quick else 15.0
    return a


def main(argv: list[str] | None = None) -> int:
    """Run the matrix, print tables, write JSON; always clean up children."""
    args = parse_args(argv)
    tables = netavark_tables()
    if tables:
        print(
            "\n*** podman's NETAVARK nft tables exist: loopback traffic is conntracked and every figure\n"
            f"*** is about 2x slower than without them: {', '.join(tables)}\n",
            file=sys.stderr,
        )
        if not args.allow_netavark:
            print("refusing to run; remove them or pass --allow-netavark", file=sys.stderr)
            return 2
    fd_limit = raise_fd_limit()
    if max([*args.clients, args.stalled_clients]) + 64 > fd_limit:
        print(f"warning: fd limit {fd_limit} is low for {max(args.clients)} clients", file=sys.stderr)
    build_loadgen()

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # even when started with SIGINT ignored (background job)
    runs: list[dict[str, Any]] = []
    result: dict[str, Any] = {"meta": meta(args, fd_limit), "runs": runs}
    try:
        for server in args.servers:
            for n in args.clients:
                runs.append(one_run(server, n, 0.0, args.duration, args))
            if args.stalled > 0:
                if args.stalled_clients not in args.clients:
                    runs.append(one_run(server, args.stalled_clients, 0.0, args.duration, args))
                runs.append(one_run(server, args.stalled_clients, args.stalled, args.stalled_duration, args))
    except KeyboardInterrupt:
        print("interrupted; stopping children", file=sys.stderr)
        result["interrupted"] = True
    finally:
        stop_all()
    result["stalled_comparison"] = stalled_comparison(runs, args.stalled_clients)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print(table(runs))
    if result["stalled_comparison"]:
        print()
        print(stalled_table(result["stalled_comparison"]))
    print(f"\nJSON: {args.out}")
    return 1 if result.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
