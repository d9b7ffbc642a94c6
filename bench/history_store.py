"""Capped list vs Stream for the shared tick history: what one append and one recovery read cost.

Why: recovery reads "everything after SEQ". A list (RPUSH + LTRIM) must be read whole and
filtered by the client; a Stream keyed by sequence is read from SEQ by Redis (XRANGE). The
append here is what the writer does (cluster/stream.APPEND_SCRIPT: XADD MAXLEN = with an explicit
ID, one not above the top made a no-op). A fresh redis-server on loopback, one client, pipelined appends.

    .venv/bin/python bench/history_store.py

Writes bench/results/history_store.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import redis

import harness
from pledge_ws.cluster.stream import APPEND_SCRIPT
from pledge_ws.core.ticks import Tick

BENCH = Path(__file__).resolve().parent

LIMIT, APPENDS, READS = 1000, 20_000, 300


def timed(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6  # µs per call


def main() -> int:
    port = harness.free_port()
    proc = harness.spawn(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"], "hist-redis.log")
    try:
        harness.wait_port(port, proc, 10)
        r = redis.Redis(port=port)
        script = r.register_script(APPEND_SCRIPT)
        ticks = [
            Tick("PLGR-USDT", f"0.00{2700 + n % 900}", str(1545896668986 + n), 1_700_000_000_000 + n, "ws", 1)
            for n in range(APPENDS)
        ]
        encoded = [t.to_json() for t in ticks]

        def append_list(batch: int) -> float:
            started = time.perf_counter()
            for i in range(0, APPENDS, batch):
                pipe = r.pipeline(transaction=False)
                for text in encoded[i : i + batch]:
                    pipe.rpush("l", text)
                pipe.ltrim("l", -LIMIT, -1)
                pipe.execute()
            return (time.perf_counter() - started) / APPENDS * 1e6

        def append_stream(batch: int) -> float:
            started = time.perf_counter()
            for i in range(0, APPENDS, batch):
                pipe = r.pipeline(transaction=False)
                for tick, text in zip(ticks[i : i + batch], encoded[i : i + batch], strict=True):
                    script(keys=["s"], args=[LIMIT, f"{tick.order}-0", text, str(tick.order - 1)], client=pipe)
                pipe.execute()
            return (time.perf_counter() - started) / APPENDS * 1e6

        results: dict[str, object] = {"limit": LIMIT, "appends": APPENDS}
        for batch in (1, 20):
            r.delete("l", "s")
            results[f"append_us_list_batch{batch}"] = append_list(batch)
            results[f"append_us_stream_batch{batch}"] = append_stream(batch)
        last = ticks[-1].order
        for missed in (10, 100, 1000):
            since = last - missed

            def read_list(since: int = since) -> list[Tick]:
                return [t for t in (Tick.from_json(v) for v in r.lrange("l", 0, -1)) if t.order > since]

            def read_stream(since: int = since) -> list[Tick]:
                return [Tick.from_json(f[b"t"]) for _id, f in r.xrange("s", min=f"({since}", max="+", count=LIMIT)]

            assert len(read_list()) == len(read_stream()) == missed
            results[f"read_us_list_missed{missed}"] = timed(read_list, READS)
            results[f"read_us_stream_missed{missed}"] = timed(read_stream, READS)
        refused = script(keys=["s"], args=[LIMIT, f"{ticks[0].order}-0", encoded[0], ""])
        results["stale_append_refused"] = refused == 0 and r.xlen("s") == LIMIT
        results["memory_bytes_list"] = r.memory_usage("l")
        results["memory_bytes_stream"] = r.memory_usage("s")
        results["redis_version"] = r.info("server")["redis_version"]
    finally:
        harness.stop(proc)
    out = BENCH / "results" / "history_store.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
