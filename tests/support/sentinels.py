"""A real Sentinel deployment for tests: one master, one replica, three sentinels.

Everything is started on free loopback ports (``redis-server --sentinel`` for the sentinels:
nothing beyond redis-server is needed), killed by PID, and every wait is bounded. Quorum 2
and ``down-after-milliseconds`` 1000, as the issue asks: a killed master is replaced in about
2-3 s.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path

import redis

from tests.support.basics import free_port, wait_until
from tests.support.processes import Process

SERVICE = "mymaster"


class Node:
    """One redis-server (data node), restartable on the same port."""

    def __init__(self, name: str, port: int, password: str | None, replica_of: int | None = None) -> None:
        self.name, self.port, self.password, self.replica_of = name, port, password, replica_of
        self.process: Process | None = None
        # Its own directory: a replica's full sync writes dump.rdb into the working directory,
        # and any redis-server started there later would load it (see support.RedisServer).
        self.dir = tempfile.mkdtemp(prefix=f"pledge-ws-redis-{name}-")

    def start(self) -> Node:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self.dir]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.process = Process(f"redis-{self.name}", args)
        wait_until(lambda: self.client().ping(), 10, what=f"redis {self.name} to answer")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=2, decode_responses=True)

    def role(self) -> str:
        return self.client().execute_command("ROLE")[0]

    def kill(self) -> None:
        if self.process:
            self.process.stop(signal.SIGKILL)
            self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()


class SentinelDeployment:
    def __init__(self, password: str | None = None, failover_timeout_ms: int = 2000) -> None:
        self.password = password
        self.failover_timeout_ms = failover_timeout_ms
        self._dir = Path(tempfile.mkdtemp(prefix="pledge-ws-sentinel-"))
        master_port = free_port()
        self.nodes = [Node("a", master_port, password), Node("b", free_port(), password, replica_of=master_port)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self._sentinels: list[Process] = []

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{auth}{hosts}/{SERVICE}"

    def start(self) -> SentinelDeployment:
        for node in self.nodes:
            node.start()
        for port in self.sentinel_ports:
            conf = self._dir / f"sentinel-{port}.conf"
            lines = [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {self._dir}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.nodes[0].port} 2",
                f"sentinel down-after-milliseconds {SERVICE} 1000",
                f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}",
                f"sentinel parallel-syncs {SERVICE} 1",
            ]
            if self.password:
                lines.append(f"sentinel auth-pass {SERVICE} {self.password}")
            conf.write_text("\n".join(lines) + "\n")
            self._sentinels.append(Process(f"sentinel-{port}", ["redis-server", str(conf), "--sentinel"]))
        wait_until(self.settled, 20, interval=0.2, what="sentinels to know the master, its replica and each other")
        return self

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=1, decode_responses=True)

    def settled(self) -> bool:
        for port in self.sentinel_ports:
            state = self.sentinel(port).sentinel_master(SERVICE)
            if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1 or state["flags"] != "master":
                return False
        return True

    def master_port(self) -> int:
        """The master as a majority of sentinels name it (raises until they agree)."""
        votes: dict[int, int] = {}
        for port in self.sentinel_ports:
            try:
                _host, master = self.sentinel(port).sentinel_get_master_addr_by_name(SERVICE)
                votes[int(master)] = votes.get(int(master), 0) + 1
            except redis.RedisError:
                continue
        best = max(votes, key=votes.get) if votes else None
        if best is None or votes[best] < 2:
            raise AssertionError(f"sentinels do not agree on a master: {votes}")
        return best

    def node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def master(self) -> Node:
        return self.node(self.master_port())

    def kill_master(self) -> tuple[Node, float]:
        node = self.master()
        node.kill()
        return node, time.monotonic()

    def manual_failover(self) -> tuple[Node, float]:
        """``SENTINEL FAILOVER``: the master is demoted while alive, its connections stay open."""
        node = self.master()
        self.sentinel(self.sentinel_ports[0]).execute_command("SENTINEL", "FAILOVER", SERVICE)
        return node, time.monotonic()

    def wait_new_master(self, old: Node, timeout: float = 15) -> Node:
        """Until the sentinels name another master and it answers as one."""

        def promoted() -> Node | None:
            port = self.master_port()
            if port == old.port:
                return None
            node = self.node(port)
            return node if node.role() == "master" else None

        return wait_until(promoted, timeout, interval=0.1, what="a replica promoted to master")

    def restart_as_replica(self, node: Node, timeout: float = 20) -> None:
        """Bring a killed node back; the sentinels turn it into a replica of the new master."""
        node.replica_of = self.master_port()  # as an operator restarts it (Sentinel would too, later)
        node.start()

        def synced() -> bool:
            info = node.client().info("replication")
            return info.get("role") == "slave" and info.get("master_link_status") == "up"

        wait_until(synced, timeout, interval=0.2, what=f"{node.name} back as a synced replica")

    def kill_sentinels(self) -> None:
        """All three sentinels gone (kill -9), the data nodes left as they are."""
        for process in self._sentinels:
            process.stop(signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(p.log() for p in self._sentinels)

    def stop(self) -> None:
        for process in self._sentinels:
            process.stop(signal.SIGKILL)
        for node in self.nodes:
            node.kill()
