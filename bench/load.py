"""One server under load, shared by the benchmark scripts: how each server kind is launched
(:class:`Server`), the C load generator's run and its figures (:func:`run_loadgen`,
:func:`derive`), and the machine and arguments each result records (:func:`meta`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

from harness import (
    BENCH,
    GORILLA,
    LOADGEN,
    LOGS,
    PY,
    ROOT,
    TICK_RATE,
    adopt,
    build_gorilla,
    free_port,
    pinned,
    process_tree,
    sample,
    spawn,
    stop,
    wait_port,
)


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
    adopt(proc)
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
