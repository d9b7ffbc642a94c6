"""Recovery benchmark: fan-out p99 to 1,000 live clients while 1,000 others each recover ~1,000 ticks.

Why this shape: the issue asks that a reconnect storm of recovering clients does not stall
fan-out to everyone else. One pledge-ws worker with Redis (the production shape: the worker
is the feed leader and writes the Stream) is pinned to CPU 0. The live clients are the C load
generator (bench/loadgen.c: one epoll thread, latency from the exchange's `ts` to receipt);
the recovering clients are a gevent driver (this file, --driver) that opens raw WebSocket
upgrades with `since=` about 950 ticks back, reads the whole replay, closes, and starts
again, 1,000 connections per wave, waves back to back for the whole window. Load generator,
driver, simulator and redis-server share CPU 1, so the run with recoveries also pays for
its own clients there: its p99 is an upper bound. The same run without the driver is the
baseline.

    .venv/bin/python bench/recovery.py [--live 1000] [--recovering 1000]

Writes bench/results/recovery.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import harness
import load

MISSED = 950  # ticks each recovering client asks for (the window keeps 1,000; ticks keep coming)


def driver(port: int, clients: int, seconds: float, out: Path) -> None:
    """Waves of ``clients`` concurrent recoveries until ``seconds`` have passed."""
    from gevent import monkey

    monkey.patch_all()
    import base64
    import os
    import socket

    import gevent
    import gevent.pool

    done: list[int] = []
    failed = [0]
    durations: list[float] = []

    def latest() -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/price", timeout=5) as response:
            return int(json.loads(response.read())["seq"])

    def recover(since: int) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
                sock.sendall(
                    f"GET /ws?symbols=PLGR-USDT&since=PLGR-USDT:{since} HTTP/1.1\r\nHost: x\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
                )
                buf, carry, frames, count = b"", b"", 0, None
                while count is None or frames < count:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise OSError("closed")
                    if count is None:
                        buf += chunk
                        if b"not recovered" in buf:
                            raise OSError("not recovered")
                        if b'"count":' in buf:
                            count = int(buf.split(b'"count":', 1)[1].split(b"}", 1)[0])
                    data = carry + chunk  # a marker split across two reads is counted once
                    frames += data.count(b'"code":0')
                    carry = data[-7:]
                done.append(count)
                durations.append(time.monotonic() - started)
        except OSError:
            failed[0] += 1

    deadline = time.monotonic() + seconds
    waves = 0
    pool = gevent.pool.Pool(clients)
    while time.monotonic() < deadline:
        since = latest() - MISSED
        for _ in range(clients):
            pool.spawn(recover, since)
        pool.join(timeout=max(1.0, deadline - time.monotonic() + 15))
        waves += 1
    durations.sort()
    out.write_text(
        json.dumps(
            {
                "waves": waves,
                "recoveries": len(done),
                "failed": failed[0],
                "mean_replayed": sum(done) / len(done) if done else None,
                "replay_p50_s": durations[len(durations) // 2] if durations else None,
                "replay_p99_s": durations[int(len(durations) * 0.99)] if durations else None,
            }
        )
    )


def one_run(args: argparse.Namespace, with_recoveries: bool) -> dict[str, Any]:
    tag = "recovery-on" if with_recoveries else "recovery-off"
    redis_port = harness.free_port()
    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = harness.spawn(harness.pinned(1, redis_argv), f"{tag}-redis.log")
    harness.wait_port(redis_port, redis, 10)
    _sim, sim_port = harness.start_simulator(tag)
    port = harness.free_port()
    server = load.Server("pledge-ws", port, sim_port)
    server.start(tag)
    assert server.proc is not None
    harness.stop(server.proc)  # restarted below with Redis: the production shape for recovery
    env = {**server.env, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "MAX_CONNECTIONS": "20000"}
    gunicorn = str(Path(harness.PY).with_name("gunicorn"))
    server.proc = harness.spawn(
        harness.pinned(0, [gunicorn, "-c", "gunicorn.conf.py", "app:app"]), f"{tag}-srv.log", env
    )
    server.wait_first_price()
    # Fill the history: 1,000+ ticks quickly, then back to the normal rate.
    api = f"http://127.0.0.1:{sim_port}/_sim/rate"
    for rate in (400, harness.TICK_RATE):
        body = json.dumps({"rate": rate}).encode()
        urllib.request.urlopen(urllib.request.Request(api, body, {"Content-Type": "application/json"}), timeout=5)
        if rate == 400:
            time.sleep(4)
    drv = None
    drv_out = harness.BUILD / f"{tag}-driver.json"
    if with_recoveries:
        seconds = args.warmup + args.duration
        argv = [harness.PY, __file__, "--driver", str(port), str(args.recovering), str(seconds), str(drv_out)]
        drv = harness.spawn(harness.pinned(1, argv), f"{tag}-driver.log")
    lg, samples = load.run_loadgen(port, args.live, args, 0.0, args.duration, server.proc.pid, tag)
    record: dict[str, Any] = {"with_recoveries": with_recoveries, "loadgen": lg}
    record["server_cpu_window"] = load.derive(lg, samples, args.live).get("server_cpu_pct")
    if drv is not None:
        drv.wait(timeout=args.warmup + args.duration + 120)
        record["driver"] = json.loads(drv_out.read_text())
    harness.stop_all()
    return record


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--driver":
        driver(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), Path(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--live", type=int, default=1000)
    ap.add_argument("--recovering", type=int, default=1000)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--ramp-per-sec", type=float, default=1000.0)
    ap.add_argument("--ping-interval", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=harness.BENCH / "results" / "recovery.json")
    args = ap.parse_args()
    args.stalled_pings = False
    harness.raise_fd_limit()
    harness.build_loadgen()
    try:
        runs = [one_run(args, False), one_run(args, True)]
    finally:
        harness.stop_all()
    keys = ("latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "delivered_fraction", "clients_connected")
    summary = {
        "client_model": "live: bench/loadgen.c (C, epoll); recovering: gevent raw-socket driver in this file",
        "live_clients": args.live,
        "recovering_clients_per_wave": args.recovering,
        "ticks_per_second": harness.TICK_RATE,
        "runs": [{**{k: r["loadgen"].get(k) for k in keys}, **r} for r in runs],
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    for r in summary["runs"]:
        print(
            f"recoveries={'on ' if r['with_recoveries'] else 'off'} p50={r['latency_p50_ms']} "
            f"p99={r['latency_p99_ms']} p99.9={r['latency_p999_ms']} delivered={r['delivered_fraction']} "
            f"server_cpu={r['server_cpu_window']} driver={r.get('driver')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
