"""Real processes on free loopback ports, stopped by PID: redis-server, the simulator, gunicorn."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.basics import ARTIFACTS, BIN, ROOT, free_port, http, wait_until


class Process:
    """A subprocess with its output in a log file, stopped by PID."""

    def __init__(self, name: str, args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.alive():
            self.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: Process | None = None
        # Its own empty directory: a redis-server loads any dump.rdb in its working directory
        # at boot, and a replica's full sync writes one there. Started in the repo root, a
        # "fresh" Redis then came up holding an earlier test's keys (terms, higher sequences).
        self.dir = tempfile.mkdtemp(prefix="pledge-ws-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = Process("redis", [*args, "--dir", self.dir])
        wait_until(self.ping, 10, what="redis-server to answer")
        return self

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def command(self, *args: str) -> bytes:
        """One raw RESP command; enough for the tests' few reads without a client library."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            encoded = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(encoded), encoded))
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"".join(parts))
            return s.recv(65536)

    def get(self, key: str) -> str | None:
        reply = self.command("GET", key)
        if reply.startswith(b"$-1"):
            return None
        header, _, rest = reply.partition(b"\r\n")
        return rest[: int(header[1:])].decode()

    def kill(self) -> None:
        if self.process:
            self.process.stop(signal.SIGKILL)
            self.process = None

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None


class Simulator:
    """``python -m pledge_ws.simulator`` on a free port; ``ping_ms`` None keeps its own ping timing."""

    def __init__(
        self,
        *extra_args: str,
        symbols: str = "PLGR-USDT,BTC-USDT,ETH-USDT",
        rate: float = 5.0,
        ping_ms: tuple[int, int] | None = (1000, 1000),
    ) -> None:
        self.port = free_port()
        pings = [] if ping_ms is None else ["--ping-interval-ms", str(ping_ms[0]), "--ping-timeout-ms", str(ping_ms[1])]
        args = [
            sys.executable,
            "-m",
            "pledge_ws.simulator",
            "--port",
            str(self.port),
            "--symbols",
            symbols,
            "--rate",
            str(rate),
            *pings,
            *extra_args,
        ]
        self.process = Process("simulator", args)
        wait_until(lambda: "listening" in self.process.log(), 10, what="simulator to listen")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def control(self, op: str, **body: object) -> Any:
        status, reply = http("POST", f"{self.url}/_sim/{op}", body)
        assert status == 200, (op, status, reply)
        return reply

    def state(self) -> dict[str, Any]:
        status, reply = http("GET", f"{self.url}/_sim/state")
        assert status == 200, reply
        return reply

    def set_price(self, symbol: str, price: str) -> dict[str, Any]:
        self.control("price", symbol=symbol, price=price)
        return self.state()["last"][symbol]

    def stop(self) -> int | None:
        return self.process.stop()


class Service:
    """gunicorn with the gevent worker, as production runs it."""

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = {"PORT": str(self.port), "LOG_LEVEL": "INFO", **env}
        self.process = Process("gunicorn", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"], self.env)
        wait_until(self._healthy, 15, what=f"gunicorn on {self.port} to serve /healthz")

    def _healthy(self) -> bool:
        if not self.process.alive():
            raise AssertionError(f"gunicorn exited:\n{self.process.log()[-3000:]}")
        return http("GET", f"{self.url}/healthz", timeout=1)[0] == 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def get(self, path: str) -> tuple[int, Any]:
        return http("GET", self.url + path)

    def wait_ready(self, timeout: float = 15) -> dict[str, Any]:
        return wait_until(lambda: self.get("/readyz")[0] == 200 and self.get("/readyz")[1], timeout, what="/readyz 200")

    def metric(self, name: str, labels: str = "") -> float:
        _, text = self.get("/metrics")
        key = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(key + " "):
                return float(line.split()[-1])
        return 0.0

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        return self.process.stop(sig)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log records (``LOG_FORMAT=json``) whose ``event`` is ``name``, oldest first."""
        found = []
        for line in self.process.log().splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("event") == name:
                        found.append(record)
        return found


class Instances:
    """Instances of the service (two workers each by default) on one Redis and one simulator,
    and the clients a test opens on them, closed with them (anything with ``close()``)."""

    def __init__(self, sim_url: str, redis_url: str, symbols: tuple[str, ...], count: int = 2, **env: str) -> None:
        self.env = {
            "KUCOIN_API_URL": sim_url,
            "REDIS_URL": redis_url,
            "WEB_CONCURRENCY": "2",
            "SYMBOLS": ",".join(symbols),
            **env,
        }
        self.count = count
        self.services: list[Service] = []
        self.clients: list[Any] = []

    def start(self, ready_timeout: float = 20.0) -> Instances:
        self.services.extend(Service(self.env) for _ in range(self.count))
        for svc in self.services:
            svc.wait_ready(timeout=ready_timeout)
        return self

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for svc in self.services:
            svc.stop()
