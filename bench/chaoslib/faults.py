"""Doing each fault of the menu (schedule.MENU) to the running deployment, and undoing it.

``run(deployment, fault, storm)`` does one fault and returns when it is over (a thread per
fault, so faults overlap as the schedule says); what it did goes into ``fault.params`` notes.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from typing import Any

import redis

from .schedule import Fault
from .topology import SERVICE, Deployment

ERROR_CODES = {"error_401": 401, "error_509": 509}


def run(dep: Deployment, fault: Fault, notes: dict[str, Any], storm: Any) -> None:
    kind, duration = fault.kind, fault.duration_s
    if kind == "leader_kill9":
        notes["pid"] = _signal_leader(dep, signal.SIGKILL)
    elif kind == "leader_sigstop":
        pid = _signal_leader(dep, signal.SIGSTOP)
        notes["pid"] = pid
        time.sleep(duration)
        if pid:
            _kill(pid, signal.SIGCONT)
    elif kind == "master_kill_restart":
        _master_kill_restart(dep, duration, notes)
    elif kind == "sentinel_failover":
        notes["answer"] = _sentinel_failover(dep)
    elif kind == "sentinels_down":
        for sentinel in dep.sentinels:
            sentinel.kill()
        time.sleep(duration)
        for sentinel in dep.sentinels:
            sentinel.start()
    elif kind == "redis_restart":
        _master_kill_restart(dep, 0.3, notes)
    elif kind == "exchange_ws_down":
        dep.sim("ws-down", seconds=duration)
        time.sleep(duration)
    elif kind == "rest_429":
        dep.sim("rest-limit", ms=int(duration * 1000))
        time.sleep(duration)
    elif kind == "rest_5xx":
        dep.sim("rest-fail", count=fault.params["count"], mode=fault.params["mode"])
    elif kind in ERROR_CODES:
        dep.sim("error-frame", code=ERROR_CODES[kind])
    elif kind == "dead_instance_server":
        dep.sim("dead-first-server", on=True)
        dep.sim("drop", mode="reset")  # reconnect now, through the bullet's dead first entry
        time.sleep(duration)
        dep.sim("dead-first-server", on=False)
    elif kind == "sequence_reset":
        dep.sim("sequence-reset", symbol=fault.params["symbol"], start=1)
    elif kind == "worker_sigterm":
        app = dep.apps[int(fault.params["instance"])]
        workers = sorted(p for p in dep.workers() if app.proc and _parent(p) == app.proc.pid)
        if workers:
            pid = workers[int(fault.params["worker"]) % len(workers)]
            notes["pid"] = pid
            _kill(pid, signal.SIGTERM)
    elif kind == "connection_storm":
        storm(int(fault.params["clients"]), duration)
    else:
        raise ValueError(f"unknown fault {kind}")


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _signal_leader(dep: Deployment, sig: int) -> int | None:
    pid = dep.leader_pid()
    if pid is not None and pid in dep.workers():
        _kill(pid, sig)
        return pid
    return None


def _master_kill_restart(dep: Deployment, down_s: float, notes: dict[str, Any]) -> None:
    port = dep.master_port()
    if port is None:
        notes["skipped"] = "no master named"
        return
    node = dep.node_of(port)
    node.kill()
    notes["killed_port"] = port
    time.sleep(down_s)
    # Back as a replica of whichever master the sentinels name now (as an operator restarts it;
    # Sentinel would reconfigure it anyway); of itself if none was promoted (it stays master).
    now = _wait_master(dep, exclude=port, timeout=max(0.0, 8 - down_s))
    argv = _without_replicaof(node.argv)
    if now is not None and now != port:
        argv += ["--replicaof", "127.0.0.1", str(now)]
    node.argv = argv
    node.start()
    notes["restarted_as"] = "replica" if now not in (None, port) else "master"


def _without_replicaof(argv: list[str]) -> list[str]:
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        if arg == "--replicaof":
            skip = 2
            continue
        out.append(arg)
    return out


def _wait_master(dep: Deployment, exclude: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        port = dep.master_port()
        if port is not None and port != exclude:
            return port
        if time.monotonic() >= deadline:
            return port
        time.sleep(0.3)


def _sentinel_failover(dep: Deployment) -> str:
    for port in random.Random(len(dep.sentinel_ports)).sample(dep.sentinel_ports, len(dep.sentinel_ports)):
        try:
            dep.sentinel(port).execute_command("SENTINEL", "FAILOVER", SERVICE)
            return "accepted"
        except redis.RedisError as exc:
            answer = str(exc)[:80]
    return answer


class Storm:
    """A connection storm: many clients connect at once, hold for a while, and leave."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls

    def __call__(self, count: int, hold_s: float) -> None:
        import websocket

        sockets, lock = [], threading.Lock()

        def one(n: int) -> None:
            try:
                ws = websocket.create_connection(self.urls[n % len(self.urls)], timeout=10)
                with lock:
                    sockets.append(ws)
            except Exception:
                pass

        threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        time.sleep(hold_s)
        for ws in sockets:
            with contextlib.suppress(Exception):
                ws.close(timeout=0.5)
