"""What the campaign records besides the clients: every write Redis receives to the price keys
and the history Streams (``MONITOR`` on whichever node is master, followed across failovers),
how many connections the exchange sees, and each worker's memory.

MONITOR lists the commands a Lua script runs too (``[0 lua]``): the fenced latest-price SET
and the Stream XADD are scripts in the service, and MONITOR shows their inner commands only
when they ran, so a refused write never counts as a write.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

from .topology import Deployment

LINE = re.compile(r"^\d+\.\d+ \[\d+ [^\]]+\] (.*)$")


def parse_args(text: str) -> list[str]:
    """Redis's MONITOR quoting (sdscatrepr): "..." with \\\\, \\", \\n, \\r, \\t, \\a, \\b, \\xHH."""
    args, i, n = [], 0, len(text)
    escapes = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}
    while i < n:
        if text[i] != '"':
            i += 1
            continue
        i += 1
        out = []
        while i < n and text[i] != '"':
            if text[i] == "\\" and i + 1 < n:
                if text[i + 1] == "x" and i + 3 < n:
                    out.append(chr(int(text[i + 2 : i + 4], 16)))
                    i += 4
                    continue
                out.append(escapes.get(text[i + 1], text[i + 1]))
                i += 2
                continue
            out.append(text[i])
            i += 1
        args.append("".join(out))
        i += 1
    return args


class RedisRecorder(threading.Thread):
    """Latest-price writes (t, key, seq, ts) and Stream appends (t, symbol, seq), in order."""

    def __init__(self, dep: Deployment, stop: threading.Event, t0: float) -> None:
        super().__init__(name="redis-monitor", daemon=True)
        self.dep, self.stop, self.t0 = dep, stop, t0
        self.writes: list[tuple[float, str, int, int]] = []
        self.appends: list[tuple[float, str, int]] = []
        self.masters: list[tuple[float, int]] = []  # (t, port) each time MONITOR moved

    def run(self) -> None:
        while not self.stop.is_set():
            port = self.dep.master_port()
            if port is None:
                self.stop.wait(0.3)
                continue
            try:
                self._monitor(port)
            except OSError:
                self.stop.wait(0.2)

    def _monitor(self, port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"MONITOR\r\n")
            sock.settimeout(0.5)
            self.masters.append((time.monotonic() - self.t0, port))
            buffer, next_check = b"", time.monotonic() + 0.5
            while not self.stop.is_set():
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + 0.5
                    master = self.dep.master_port()
                    if master is not None and master != port:
                        return  # follow the failover
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\r\n")
                for line in lines:
                    self._line(line.decode(errors="replace"))

    def _line(self, line: str) -> None:
        match = LINE.match(line.lstrip("+"))
        if not match:
            return
        args = parse_args(match.group(1))
        if not args:
            return
        t = time.monotonic() - self.t0
        command = args[0].upper()
        if command == "SET" and len(args) >= 3 and args[1].startswith("pledge_ws:price:"):
            try:
                tick = json.loads(args[2])
                self.writes.append((t, args[1], int(tick["seq"]), int(tick["ts"])))
            except (ValueError, KeyError):
                pass
        elif command == "XADD" and len(args) >= 6 and args[1].startswith("pledge_ws:stream:"):
            entry_id = next((a for a in args[2:] if re.fullmatch(r"\d+-0", a)), None)
            if entry_id:
                self.appends.append((t, args[1].split(":", 2)[2], int(entry_id.split("-")[0])))


class Sampler(threading.Thread):
    """Every second: the exchange's connection count; every 10 s: each worker's RSS."""

    def __init__(self, dep: Deployment, stop: threading.Event, t0: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self.dep, self.stop, self.t0 = dep, stop, t0
        self.links: list[tuple[float, int]] = []
        self.rss: dict[int, list[tuple[float, int]]] = {}

    def run(self) -> None:
        n = 0
        while not self.stop.wait(1.0):
            t = time.monotonic() - self.t0
            try:
                links = self.dep.exchange_links()
            except Exception:
                links = None
            if links is not None:
                self.links.append((t, links))
            if n % 10 == 0:
                for pid in self.dep.workers():
                    rss = _rss(pid)
                    if rss:
                        self.rss.setdefault(pid, []).append((t, rss))
            n += 1


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * 4096
    except OSError:
        return None
