"""Soak benchmark (not a test, not in CI): churning clients against one worker for minutes.

    .venv/bin/python bench/soak.py [--duration 600] [--clients 1000]

1,000 clients (by default) connect, read for a while and leave, over and over, while the
simulator ticks at 10/s: most close properly, some vanish without a close frame (RST), some
stop reading and pinging (the server must evict or drop them). Every 30 s it samples the
server's RSS and open file descriptors. At the end it sets one last price and checks that
every well-behaved client connected at that moment received it. Loopback only; bounded in
time (duration + 60 s at most).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from harness import http_json, metric_value, start_pledge_ws, start_simulator, stop_all  # noqa: E402

FINAL_PRICE = "0.009999"


def masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


def read_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    frames = []
    while len(buffer) >= 2:
        opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
        header = 2 + (2 if length == 126 else 8 if length == 127 else 0)
        if length >= 126:
            if len(buffer) < header:
                break
            length = int.from_bytes(buffer[2:header], "big")
        if len(buffer) < header + length:
            break
        frames.append((opcode, bytes(buffer[header : header + length])))
        del buffer[: header + length]
    return frames


class Stats:
    def __init__(self) -> None:
        self.connects = 0
        self.connect_failures = 0
        self.closed_by_server = {"good": 0, "vanish": 0, "stall": 0}
        self.live: dict[int, str | None] = {}  # well-behaved clients connected now -> last price
        self.saw_final: set[int] = set()  # well-behaved clients that received FINAL_PRICE


def client(n: int, port: int, kind: str, stats: Stats, end: float) -> None:
    rng = random.Random(n)
    while time.monotonic() < end:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            stats.connect_failures += 1
            gevent.sleep(1)
            continue
        stats.connects += 1
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        try:
            sock.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise OSError("closed during handshake")
                head += chunk
            buffer = bytearray(head.split(b"\r\n\r\n", 1)[1])
            if kind == "stall":
                gevent.sleep(min(rng.uniform(20, 60), max(0, end - time.monotonic())))
                sock.close()
                continue
            stay_until = time.monotonic() + rng.uniform(5, 40)
            if stay_until > end:
                stay_until = end + 8  # whoever is connected at the end stays for the last price
            if kind == "good":
                stats.live[n] = None
            next_ping = 0.0
            while time.monotonic() < stay_until:
                if time.monotonic() >= next_ping:
                    sock.sendall(masked_text(b"ping"))
                    next_ping = time.monotonic() + 5
                sock.settimeout(1)
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    stats.closed_by_server[kind] += 1
                    break
                buffer += chunk
                for opcode, payload in read_frames(buffer):
                    if opcode == 0x8:
                        stats.closed_by_server[kind] += 1
                        stay_until = 0
                    elif opcode == 0x1:
                        message = json.loads(payload)
                        if message.get("code") == 0 and kind == "good":
                            stats.live[n] = message["data"]
                            if message["data"] == FINAL_PRICE:
                                stats.saw_final.add(n)
            if kind == "vanish":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == "good":
                sock.sendall(struct.pack("!BB", 0x88, 0x82) + b"\x00\x00\x00\x00" + b"\x03\xe8")
        except OSError:
            pass
        finally:
            stats.live.pop(n, None)
            sock.close()


def sample(pid: int) -> tuple[int, int]:
    """(RSS KiB, open fds) of the gunicorn worker (the master's child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    worker = int(children[0]) if children else pid
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{worker}/status").read_text().splitlines()
        if line.startswith("VmRSS")
    )
    return rss, len(os.listdir(f"/proc/{worker}/fd"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    try:
        _sim, sim_port = start_simulator("soak")
        env = {"SYMBOLS": "PLGR-USDT", "SLOW_CLIENT_TIMEOUT": "10", "HEARTBEAT_TIMEOUT": "20"}
        server, port = start_pledge_ws("soak", sim_port, env)
        stats = Stats()
        start = time.monotonic()
        end = start + args.duration
        kinds = ["good"] * 8 + ["vanish", "stall"]
        greenlets = [gevent.spawn(client, n, port, kinds[n % len(kinds)], stats, end) for n in range(args.clients)]
        gevent.sleep(20)  # ramp-up and first churn
        first = sample(server.pid)
        samples = [(round(time.monotonic() - start), *first)]
        while time.monotonic() < end:
            gevent.sleep(min(30, max(0.1, end - time.monotonic())))
            samples.append((round(time.monotonic() - start), *sample(server.pid)))
        gevent.sleep(1)
        present = set(stats.live)
        http_json("POST", f"http://127.0.0.1:{sim_port}/_sim/price", {"symbol": "PLGR-USDT", "price": FINAL_PRICE})
        gevent.sleep(3)
        stayed = [n for n in present if n in stats.live]
        saw_last = sum(n in stats.saw_final for n in stayed)
        gevent.joinall(greenlets, timeout=45)
        last = sample(server.pid)
        evictions = metric_value(port, "pledge_ws_clients_evicted_total", 'reason="slow"')
        heartbeat = metric_value(port, "pledge_ws_clients_closed_total", 'reason="heartbeat timeout"')
        result = {
            "duration_s": args.duration,
            "clients": args.clients,
            "connects": stats.connects,
            "connect_failures": stats.connect_failures,
            "rss_kib_start": first[0],
            "rss_kib_end": last[0],
            "fds_start": first[1],
            "fds_end": last[1],
            "evicted_slow": evictions,
            "dropped_heartbeat": heartbeat,
            "closed_by_server": stats.closed_by_server,
            "good_clients_at_end": len(stayed),
            "good_clients_saw_last_price": saw_last,
            "samples_t_rss_fds": samples,
        }
        print(json.dumps(result, indent=2))
        out = Path(__file__).parent / "results" / "soak.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    finally:
        stop_all()


if __name__ == "__main__":
    main()
