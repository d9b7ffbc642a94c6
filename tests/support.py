"""Real processes for integration tests: redis-server, the simulator, gunicorn, clients.

Every process is started on a free loopback port and killed by PID; every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websocket

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


def http(method: str, url: str, body: object | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    """One HTTP request (``body``: JSON-encoded, or sent as is when bytes); the status and the
    answer parsed as JSON, or its text when it is not JSON."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def upgrade_headers(port: int, **override: str) -> dict[str, str]:
    """A valid RFC 6455 opening handshake's headers; an override of "" leaves a header out."""
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **override,
    }
    return {k: v for k, v in headers.items() if v}


def raw_upgrade(
    port: int, path: str = "/ws", headers: dict[str, str] | None = None, rcvbuf: int | None = None, read: bool = True
) -> tuple[socket.socket, bytes]:
    """The one raw WebSocket upgrade of the tests: send the handshake by hand on a plain socket
    (``rcvbuf``: a tiny receive window, for clients that stop reading). With ``read``, the
    answer's head and whatever followed it in the same reads; else b"" (read it later)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in (headers or upgrade_headers(port)).items()), "", ""]
    sock.sendall("\r\n".join(lines).encode())
    data = b""
    while read and b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return sock, data


def upgrade_status(port: int, query: str) -> tuple[int, Any]:
    """Upgrade ``/ws?query``: the HTTP status, and the JSON body of a refusal (None for 101)."""
    sock, data = raw_upgrade(port, f"/ws?{query}")
    with sock:
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        if status == 101:
            return status, None
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        while len(body) < length:
            body += sock.recv(4096)
        return status, json.loads(body)


def read_close_code(sock: socket.socket, deadline: float, buffer: bytes = b"") -> int | None:
    """Read a raw upgrade's answer and server frames until a close frame: its status code
    (None if the socket closed or the deadline passed first)."""
    while time.monotonic() < deadline:
        if buffer.startswith(b"HTTP/"):
            if b"\r\n\r\n" not in buffer:
                buffer += _recv(sock, deadline)
                continue
            buffer = buffer.split(b"\r\n\r\n", 1)[1]
        while len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            header = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            if len(buffer) < header:
                break
            if length >= 126:
                length = int.from_bytes(buffer[2:header], "big")
            if len(buffer) < header + length:
                break
            if opcode == 0x8:
                return int.from_bytes(buffer[header : header + 2], "big")
            buffer = buffer[header + length :]
        chunk = _recv(sock, deadline)
        if not chunk:
            return None
        buffer += chunk
    return None


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""


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


class Client:
    """A real WebSocket client (websocket-client) with bounded waits."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.ws = websocket.create_connection(url, timeout=5, **kwargs)

    def send(self, text: str) -> None:
        self.ws.send(text)

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def next_non_price(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame that is not a price (the feed's hand-over poll may push one at start)."""
        for _ in range(50):
            message = self.recv(timeout)
            if message["code"] != 0:
                return message
        raise AssertionError("only price frames")

    def next_price(self, timeout: float = 5.0, symbol: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.recv(remaining)
            if message["code"] == 0 and (symbol is None or message["symbol"] == symbol):
                return message
        raise AssertionError("no price frame in time")

    def wait_price(self, price: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.next_price(remaining)
            if message["data"] == price:
                return message
        raise AssertionError(f"price {price} never arrived")

    def close_code(self, timeout: float = 5.0) -> int:
        """Read until the server's close frame; its status code."""
        self.ws.settimeout(timeout)
        while True:
            opcode, frame = self.ws.recv_data_frame()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(frame.data[:2], "big")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(timeout=1)


def refused(url: str, **kwargs: Any) -> websocket.WebSocketBadStatusException:
    """The HTTP refusal of a WebSocket upgrade that must not succeed (AssertionError if it did)."""
    try:
        ws = websocket.create_connection(url, timeout=3, **kwargs)
    except websocket.WebSocketBadStatusException as exc:
        return exc
    ws.close()
    raise AssertionError(f"the upgrade to {url} was accepted")
