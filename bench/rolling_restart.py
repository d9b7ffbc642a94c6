"""Rolling restart: SIGTERM one of two workers holding N clients; how long until all are back.

Why: after a deploy every client of a restarted worker reconnects at once. The server's 1001
close carries ``reconnect_window_ms`` (protocol.py) and the reference client spreads its
reconnect over that window; ``loadgen --reconnect`` does the same, so this measures what the
remaining and the replacement worker see: every closed client's time from its close to its
first new price, and from the first close of the run to the last client back.

    .venv/bin/python bench/rolling_restart.py [--clients 10000] [--restart-after 5] [--busy-poll]

Two workers (``WEB_CONCURRENCY=2``) and a fresh redis-server share both cores with the load
generator, as the ``pledge-ws-2w`` row of bench/run.py does. Writes
bench/results/rolling_restart.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    LOADGEN,
    LOGS,
    adopt,
    build_loadgen,
    free_port,
    netavark_tables,
    pinned,
    process_tree,
    raise_fd_limit,
    start_simulator,
    stop,
    stop_all,
)
from load import Server, meta


def workers(master: int) -> list[int]:
    """The gunicorn master's worker pids (its direct children)."""
    return [pid for pid in process_tree(master) if pid != master]


def sockets_of(pid: int) -> int:
    """Open sockets of a process (its /ws clients, give or take a few): where reconnects went."""
    try:
        return sum(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:") for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def leaders(log: Path) -> list[int]:
    """Pids that logged taking the exchange feed, in order (text or JSON log lines)."""
    found = re.findall(r'\[(\d+)\] pledge_ws\.leader: leader gained|"pid": ?(\d+)[^\n]*leader gained', log.read_text())
    return [int(a or b) for a, b in found]


def run(args: argparse.Namespace) -> dict[str, Any]:
    rec: dict[str, Any] = {"clients": args.clients, "restart_after_s": args.restart_after, "procedure": args.procedure}
    sim, sim_port = start_simulator("rolling")
    srv = Server("pledge-ws-2w", free_port(), sim_port)
    try:
        srv.start("rolling")
        rec["first_price_s"] = round(srv.wait_first_price(), 3)
        assert srv.proc is not None
        before = workers(srv.proc.pid)
        argv = [str(LOADGEN), "--url", f"ws://127.0.0.1:{srv.port}/ws", "--clients", str(args.clients)]
        argv += ["--ramp-per-sec", str(args.ramp_per_sec), "--warmup", "3", "--duration", str(args.duration)]
        argv += ["--ping-interval", "5", "--reconnect", "--json"]
        if args.busy_poll:
            argv.append("--busy-poll")
        proc = subprocess.Popen(pinned("0,1", argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        adopt(proc)
        events: list[str] = []
        timeline: list[dict[str, float]] = []  # sockets per worker, every 0.5 s after the SIGTERM
        master = srv.proc.pid

        def restart_one() -> None:
            time.sleep(args.restart_after)
            t0 = time.monotonic()
            if args.procedure == "ttin-ttou":
                # gunicorn's own rolling step: one more worker (TTIN), ready before the oldest
                # is stopped gracefully (TTOU), so the reconnects meet two listening workers.
                os.kill(master, signal.SIGTTIN)
                deadline = time.monotonic() + 15
                while len(workers(master)) < 3 and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(args.boot_wait)
                rec["new_worker_ready_s"] = round(time.monotonic() - t0, 2)
                victim = min(before)
                os.kill(master, signal.SIGTTOU)
            else:
                victim = before[0]
                os.kill(victim, signal.SIGTERM)
            rec["restarted_pid"] = victim
            rec["restart_at_wall"] = time.time()
            print(f"    {args.procedure}: worker {victim} stopped", flush=True)
            while time.monotonic() - t0 < args.duration - args.restart_after - 1 and proc.poll() is None:
                pids = workers(master)
                timeline.append({"t": round(time.monotonic() - t0, 2), **{str(p): sockets_of(p) for p in pids}})
                time.sleep(0.5)

        def read_events() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                events.append(line)
                if line.startswith("EVENT connected"):
                    print(f"    {line[6:]}", flush=True)
                if line.startswith("EVENT window_start"):
                    threading.Thread(target=restart_one, daemon=True).start()

        reader = threading.Thread(target=read_events, daemon=True)
        reader.start()
        assert proc.stdout is not None
        out = proc.stdout.read()  # not communicate(): it would also read the EVENT lines
        proc.wait(timeout=30)
        reader.join(timeout=5)
        (LOGS / "rolling-loadgen.log").write_text("\n".join(events) + "\n")
        rec["loadgen"] = json.loads(out.decode())
        rec["workers_before"], rec["workers_after"] = before, workers(srv.proc.pid)
        rec["feed_holders"] = leaders(LOGS / "rolling-server.log")
        rec["sockets_per_worker"] = timeline
    finally:
        for p in (srv.proc, srv.redis, sim):
            if p is not None:
                stop(p)
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--ramp-per-sec", type=float, default=1000.0)
    ap.add_argument("--duration", type=float, default=30.0, help="window seconds; the restart happens inside it")
    ap.add_argument("--restart-after", type=float, default=5.0, help="seconds into the window")
    ap.add_argument("--busy-poll", action="store_true")
    ap.add_argument(
        "--procedure",
        choices=("sigterm", "ttin-ttou"),
        default="sigterm",
        help="SIGTERM one worker (gunicorn replaces it), or TTIN then TTOU on the master",
    )
    ap.add_argument("--boot-wait", type=float, default=2.0, help="ttin-ttou: seconds for the new worker to boot")
    ap.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results" / "rolling_restart.json",
        help="(the figures in bench/README.md: rolling_restart-*.json)",
    )
    args = ap.parse_args(argv)
    if netavark_tables():
        print("refusing to run while podman's NETAVARK nft tables exist (see bench/run.py)", file=sys.stderr)
        return 2
    raise_fd_limit()
    build_loadgen()
    try:
        rec = run(args)
    finally:
        stop_all()
    rec["meta"] = meta(args, raise_fd_limit())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rec, indent=2, default=str) + "\n")
    rc = rec["loadgen"].get("reconnect", {})
    print(json.dumps(rc, indent=2))
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
