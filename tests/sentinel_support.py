"""A real Sentinel deployment for tests: one master, one replica, three sentinels.

Everything is started on free loopback ports (``redis-server --sentinel`` for the sentinels:
nothing beyond redis-server is needed), killed by PID, and every wait is bounded. Quorum 2
and ``down-after-milliseconds`` 1000, as the issue asks: a killed master is replaced in about
2-3 s.
"""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
import websocket

from pledge_ws.cluster import keys
from tests.support import Process, free_port, wait_until

SERVICE = "mymaster"
Keys = tuple[str | None, dict[str, dict]]  # PRICE_KEY, and each symbol's latest tick


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


class Reader:
    """A /ws client read in its own thread: records every price frame, checks order as it goes.

    ``violations`` lists any frame whose seq is not above the previous one of its symbol
    (an older or repeated price); ``first_after(wall)`` is when the first price generated
    by the exchange after ``wall`` (its ``ts``) arrived here.
    """

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=5)
        self.frames: list[tuple[float, str, int, int, str]] = []  # (recv wall, symbol, seq, ts, price)
        self.violations: list[str] = []
        self.notices: list[tuple[float, str]] = []  # (recv wall, data) of code -1 frames
        self.closed: str | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: dict[str, int] = {}
        next_ping = time.monotonic() + 5
        self.ws.settimeout(0.5)
        while not self._stop:
            if time.monotonic() >= next_ping:
                try:
                    self.ws.send("ping")
                except Exception as exc:
                    self.closed = repr(exc)
                    return
                next_ping = time.monotonic() + 5
            try:
                raw = self.ws.recv()
            except Exception as exc:
                if "timed out" in str(exc) or type(exc).__name__ == "WebSocketTimeoutException":
                    continue
                self.closed = repr(exc)
                return
            message = json.loads(raw)
            if message.get("code") == -1:
                self.notices.append((time.time(), message.get("data")))
            if message.get("code") != 0:
                continue
            symbol, seq = message["symbol"], int(message["seq"])
            if seq <= last.get(symbol, -1):
                self.violations.append(f"{symbol}: seq {seq} after {last[symbol]}")
            last[symbol] = max(seq, last.get(symbol, -1))
            self.frames.append((time.time(), symbol, seq, message["ts"], message["data"]))

    def first_after(self, wall: float) -> float | None:
        for received, _symbol, _seq, ts, _price in list(self.frames):
            if ts / 1000 > wall:
                return received
        return None

    def has_seq(self, symbol: str, seq: str | int) -> bool:
        return any(s == symbol and q == int(seq) for _received, s, q, _ts, _price in list(self.frames))

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        with contextlib.suppress(Exception):
            self.ws.close(timeout=1)


class KeyPoller:
    """Reads the latest-price keys every 50 ms in a thread; records any key that goes back.

    ``read()`` returns (PRICE_KEY value, {symbol: tick dict}) or raises while Redis is away.
    """

    def __init__(self, read: Callable[[], Keys], symbols: tuple[str, ...], interval: float = 0.05) -> None:
        self.read, self.symbols, self.interval = read, symbols, interval
        self.samples = 0
        self.errors = 0
        self.phase = ""  # set by the test; each violation is recorded with it
        self.violations: list[str] = []
        self.by_phase: dict[str, list[str]] = {}
        self.last_sample = (0.0, False)  # (monotonic time, some key below the highest seen)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: dict[str, int] = {}
        while not self._stop:
            try:
                primary, ticks = self.read()
            except Exception:
                self.errors += 1
                time.sleep(self.interval)
                continue
            self.samples += 1
            behind = False
            for symbol, tick in ticks.items():
                seq = int(tick["seq"])
                if seq < last.get(symbol, -1):
                    behind = True
                    self._violation(f"{symbol}: key went back from seq {last[symbol]} to {seq}")
                last[symbol] = max(seq, last.get(symbol, -1))
            self.last_sample = (time.monotonic(), behind)
            first = ticks.get(self.symbols[0])
            if first is not None and primary is not None and primary != first["price"]:
                self._violation(f"primary key {primary!r} != {first['price']!r} (read together)")
            time.sleep(self.interval)

    def _violation(self, text: str) -> None:
        self.by_phase.setdefault(self.phase, []).append(text)
        if not self.phase.startswith("allowed:"):
            self.violations.append(text)

    def caught_up_since(self, since: float) -> bool:
        """A sample read after ``since`` (monotonic) found every key at the highest seen."""
        at, behind = self.last_sample
        return at > since and not behind

    def stop(self) -> None:
        self._stop = True
        self._thread.join(2)


def read_keys(client: redis.Redis, symbols: tuple[str, ...], primary_key: str = "plgr_price") -> Keys:
    """One MGET (atomic) of the primary key and every pledge_ws:price:<SYMBOL>."""
    values = client.mget([primary_key, *(keys.price_key(s) for s in symbols)])
    ticks = {s: json.loads(v) for s, v in zip(symbols, values[1:], strict=True) if v is not None}
    return values[0], ticks
