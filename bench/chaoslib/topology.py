"""The campaign's deployment, on loopback: a Redis master and a replica, three sentinels, the
exchange simulator, and two instances of pledge-ws with two workers each on the Sentinel URL.

Every process is started through harness.spawn (its own process group, killed at the end) on a
free port, and can be killed and started again on the same port, as the faults need.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

import harness

SERVICE = "chaos"
SYMBOLS = ("PLGR-USDT", "BTC-USDT")


@dataclass
class Proc:
    """One process of the deployment, restartable with the same command."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> Proc:
        self.starts += 1
        self.proc = harness.spawn(self.argv, f"chaos-{self.name}-{self.starts}.log", env=self.env)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            if sig == signal.SIGKILL:
                self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Deployment:
    def __init__(self, workdir: Path, sim_rate: float = 1.0) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-", dir=workdir))
        self.redis_ports = [harness.free_port(), harness.free_port()]
        self.sentinel_ports = [harness.free_port() for _ in range(3)]
        self.sim_port = harness.free_port()
        self.app_ports = [harness.free_port(), harness.free_port()]
        self.nodes = [self._node(0, None), self._node(1, self.redis_ports[0])]
        self.sentinels = [self._sentinel(port) for port in self.sentinel_ports]
        self.simulator = Proc(
            "simulator",
            [harness.PY, "-m", "pledge_ws.simulator", "--port", str(self.sim_port), "--rate", str(sim_rate),
             "--symbols", ",".join(SYMBOLS), "--ping-interval-ms", "2000", "--ping-timeout-ms", "2000", "--seed", "1"],
        )  # fmt: skip
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        self.apps = [self._app(n, port, f"redis+sentinel://{hosts}/{SERVICE}") for n, port in enumerate(self.app_ports)]

    def _node(self, n: int, replica_of: int | None) -> Proc:
        node_dir = self.dir / f"redis-{n}"
        node_dir.mkdir()
        argv = ["redis-server", "--port", str(self.redis_ports[n]), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(node_dir)]  # fmt: skip
        if replica_of:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        return Proc(f"redis-{n}", argv)

    def _sentinel(self, port: int) -> Proc:
        conf = self.dir / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.redis_ports[0]} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\nsentinel failover-timeout {SERVICE} 3000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        return Proc(f"sentinel-{port}", ["redis-server", str(conf), "--sentinel"])

    def _app(self, n: int, port: int, redis_url: str) -> Proc:
        gunicorn = str(Path(harness.PY).with_name("gunicorn"))
        env = {
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "SYMBOLS": ",".join(SYMBOLS),
            "KUCOIN_API_URL": f"http://127.0.0.1:{self.sim_port}",
            "REDIS_URL": redis_url,
            "REST_FALLBACK_INTERVAL": "1",
            "HEARTBEAT_TIMEOUT": "30",
            "LOG_FORMAT": "json",
            "MAX_CONNECTIONS": "5000",
            "PROMETHEUS_MULTIPROC_DIR": str(self.dir / f"metrics-{n}"),
        }
        return Proc(f"app-{n}", [gunicorn, "-c", "gunicorn.conf.py", "app:app"], env)

    # -- start and look -------------------------------------------------------------------

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for port in self.redis_ports:
            harness.wait_port(port, self.nodes[self.redis_ports.index(port)].proc, 10)  # type: ignore[arg-type]
        _wait(lambda: self.client(self.redis_ports[1]).info("replication").get("master_link_status") == "up", 20)
        for sentinel in self.sentinels:
            sentinel.start()
        _wait(self.sentinels_agree, 30)
        self.simulator.start()
        harness.wait_port(self.sim_port, self.simulator.proc, 15)  # type: ignore[arg-type]
        for app in self.apps:
            app.start()
        for port in self.app_ports:
            _wait(lambda p=port: harness.http_json("GET", f"http://127.0.0.1:{p}/readyz", timeout=1)[0] == 200, 40)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True)

    def sentinels_agree(self) -> bool:
        try:
            for port in self.sentinel_ports:
                state = self.sentinel(port).sentinel_master(SERVICE)
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
        except redis.RedisError:
            return False
        return True

    def master_port(self) -> int | None:
        """The master a majority of the sentinels name, or None when they cannot say."""
        votes: dict[int, int] = {}
        for port in self.sentinel_ports:
            try:
                _host, master = self.sentinel(port).sentinel_get_master_addr_by_name(SERVICE)
                votes[int(master)] = votes.get(int(master), 0) + 1
            except (redis.RedisError, TypeError):
                continue
        best = max(votes, key=lambda p: votes[p]) if votes else None
        return best if best is not None and votes[best] >= 2 else None

    def node_of(self, port: int) -> Proc:
        return self.nodes[self.redis_ports.index(port)]

    def leader_pid(self) -> int | None:
        port = self.master_port()
        if port is None:
            return None
        try:
            value = self.client(port).get("pledge_ws:leader")
        except redis.RedisError:
            return None
        return int(value.decode().split(":")[1]) if value else None

    def workers(self) -> list[int]:
        """The gunicorn workers of both instances (children of their masters)."""
        pids = []
        for app in self.apps:
            if app.proc is not None and app.alive():
                pids += [p for p in harness.process_tree(app.proc.pid) if p != app.proc.pid]
        return pids

    def exchange_links(self) -> int | None:
        status, state = harness.http_json("GET", f"http://127.0.0.1:{self.sim_port}/_sim/state", timeout=2)
        return int(state["connections"]) if status == 200 else None

    def sim(self, op: str, **body: Any) -> Any:
        return harness.http_json("POST", f"http://127.0.0.1:{self.sim_port}/_sim/{op}", body, timeout=3)[1]

    def ws_urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{port}/ws" for port in self.app_ports]


def _wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the deployment did not come up within {timeout:g} s")
