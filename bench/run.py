"""Fan-out benchmark: pledge-ws against its peers at 1k/5k/10k clients per worker.

Why this shape: the issue asks whether one gevent worker can push every tick to
10,000 clients. Each server gets the same exchange feed (a fresh simulator at
10 ticks/s), is pinned to CPU 0, and is driven by the C load generator pinned
to CPU 1, so the server's CPU share and the clients' latency are not polluted
by the client side. Everything this script starts runs in its own process
group and is killed at the end, also on Ctrl-C or an exception.

    .venv/bin/python bench/run.py [--quick] [--servers pledge-ws,naive-flask-sock,websockets]
                                  [--clients 1000,5000,10000] [--stalled 0.05]

Writes bench/results/latest.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    build_loadgen,
    free_port,
    netavark_tables,
    raise_fd_limit,
    start_simulator,
    stop,
    stop_all,
)
from load import Server, derive, meta, run_loadgen

SERVERS = ("pledge-ws", "naive-flask-sock", "websockets", "pledge-ws-2w", "gorilla")
DEFAULT_SERVERS = SERVERS[:3]  # pledge-ws-2w (two workers + Redis, both cores) on request


def one_run(server: str, clients: int, stalled: float, duration: float, args: argparse.Namespace) -> dict[str, Any]:
    """Fresh simulator + fresh server + one loadgen pass; everything stopped afterwards."""
    tag = f"{server}-{clients}{'-stalled' if stalled else ''}"
    print(f"== {tag}: {clients} clients, stalled {stalled:g}, window {duration:g}s", flush=True)
    rec: dict[str, Any] = {"server": server, "clients": clients, "stalled_fraction": stalled, "duration": duration}
    sim = srv = None
    try:
        sim, sim_port = start_simulator(tag)
        srv = Server(server, free_port(), sim_port, max_accept=args.max_accept)
        srv.start(tag)
        rec["first_price_s"] = round(srv.wait_first_price(), 3)
        assert srv.proc is not None
        time.sleep(1)  # let the first-price client's close settle before the baseline sample
        lg, samples = run_loadgen(srv.port, clients, args, stalled, duration, srv.proc.pid, tag)
        rec["server_alive_at_end"] = srv.proc.poll() is None
        rec.update(loadgen=lg, samples=samples, derived=derive(lg, samples, clients))
    except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
        print(f"   error: {rec['error']}", flush=True)
    finally:
        for p in (srv.proc if srv else None, srv.redis if srv else None, sim):
            if p is not None:
                stop(p)
    time.sleep(1)
    return rec


# -------------------------------------------------------------------- report


def fmt(v: Any, spec: str = ".1f", suffix: str = "") -> str:
    """Format a number or show an em dash for missing values."""
    return "—" if v is None else f"{v:{spec}}{suffix}"


def table(runs: list[dict[str, Any]]) -> str:
    """Markdown table, one row per run."""
    head = (
        "| server | clients | ramp s | stalled | delivered | ticks seen/expected | p50 ms | p99 ms | max ms "
        "| server CPU % | CPU0 softirq % | KB/conn | loadgen CPU % | evictions | CPU0 other % "
        "| ramp µs/conn | ramp p99 ms | client |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        if "error" in r:
            rows.append(
                f"| {r['server']} | {r['clients']} | {r['stalled_fraction']:g} | error: {r['error'][:60]} |" + " |" * 14
            )
            continue
        lg, d = r["loadgen"], r["derived"]
        stalled = f"{lg['stalled_connected']}" if r["stalled_fraction"] else "0"
        ev = f"{d['evictions']}/{lg['stalled_connected']}" if r["stalled_fraction"] else "—"
        rows.append(
            f"| {r['server']} | {lg['clients_connected']}/{r['clients']} | {fmt(lg.get('ramp_seconds'))} | {stalled} | "
            f"{fmt(lg['delivered_fraction'], '.4f')} | {lg['ticks_seen']}/{d['ticks_expected']} | "
            f"{fmt(lg['latency_p50_ms'], '.2f')} | {fmt(lg['latency_p99_ms'], '.2f')} | "
            f"{fmt(lg['latency_max_ms'], '.1f')} | "
            f"{fmt(d.get('server_cpu_pct'))} | {fmt(d.get('cpu0_softirq_pct'))} | {fmt(d.get('kb_per_conn'))} | "
            f"{fmt(d.get('loadgen_cpu_pct'))}{' (saturated!)' if d.get('loadgen_saturated') else ''} | "
            f"{ev} | {fmt(d.get('cpu0_other_pct'))} | {fmt(d.get('ramp_cpu_us_per_conn'), '.0f')} | "
            f"{fmt(lg.get('ramp_latency_p99_ms'), '.1f')} | "
            f"{d.get('client_model')} |"
        )
    return "\n".join(rows)


def stalled_comparison(runs: list[dict[str, Any]], stalled_clients: int) -> list[dict[str, Any]]:
    """Others' p99 with stalled clients present vs the same server's clean run at the same size."""
    out = []
    for r in runs:
        if not r["stalled_fraction"] or "error" in r:
            continue
        base = next(
            (
                b
                for b in runs
                if b["server"] == r["server"]
                and b["clients"] == stalled_clients
                and not b["stalled_fraction"]
                and "error" not in b
            ),
            None,
        )
        p99 = r["loadgen"]["latency_p99_ms"]
        bp99 = base["loadgen"]["latency_p99_ms"] if base else None
        out.append(
            {
                "server": r["server"],
                "clients": r["clients"],
                "stalled": r["loadgen"]["stalled_connected"],
                "p99_ms": p99,
                "baseline_p99_ms": bp99,
                "p99_ratio": p99 / bp99 if p99 and bp99 else None,
                "delivered_fraction": r["loadgen"]["delivered_fraction"],
                "baseline_delivered_fraction": base["loadgen"]["delivered_fraction"] if base else None,
                "evictions": r["derived"]["evictions"],
            }
        )
    return out


def stalled_table(rows: list[dict[str, Any]]) -> str:
    """Markdown for the stalled scenario."""
    out = [
        "| server | clients | stalled | others' p99 ms | clean p99 ms | ratio | delivered (clean) | evictions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        out.append(
            f"| {c['server']} | {c['clients']} | {c['stalled']} | {fmt(c['p99_ms'], '.2f')} | "
            f"{fmt(c['baseline_p99_ms'], '.2f')} | {fmt(c['p99_ratio'], '.2f', 'x')} | "
            f"{fmt(c['delivered_fraction'], '.4f')} ({fmt(c['baseline_delivered_fraction'], '.4f')}) | "
            f"{c['evictions']}/{c['stalled']} |"
        )
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """CLI; --quick is one 1,000-client, 10 s pass per server."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="1000 clients, 10 s window, no stalled scenario unless --stalled"
    )
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS))
    ap.add_argument("--clients", default=None, help="comma list (default 1000,5000,10000)")
    ap.add_argument(
        "--stalled", type=float, default=None, help="stalled fraction for the extra scenario (default 0.05; 0 = skip)"
    )
    ap.add_argument("--stalled-clients", type=int, default=1000)
    ap.add_argument(
        "--stalled-duration", type=float, default=40.0, help="window of the stalled run: evictions need time to happen"
    )
    ap.add_argument(
        "--stalled-pings",
        action="store_true",
        help="stalled clients keep pinging (never reading), so only slow-consumer handling can evict them",
    )
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=None, help="window seconds (default 15, --quick 10)")
    ap.add_argument("--ramp-per-sec", type=float, default=1000.0)
    ap.add_argument("--ping-interval", type=float, default=5.0)
    ap.add_argument("--max-pending", type=int, default=200, help="handshakes in flight (loadgen)")
    ap.add_argument("--ramp-grace", type=float, default=30.0, help="seconds past N/R before unstarted clients fail")
    ap.add_argument(
        "--busy-poll", action="store_true", help="loadgen never sleeps in epoll (remote clients; bench/README.md)"
    )
    ap.add_argument(
        "--max-accept", type=int, default=None, help="pledge-ws only: gevent's accepts per wake-up (default: gevent's)"
    )
    ap.add_argument("--profile", action="store_true", help="py-spy the worker during the ramp (bench/.build/logs)")
    ap.add_argument("--allow-netavark", action="store_true", help="run even while podman's nft tables exist")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json")
    a = ap.parse_args(argv)
    a.clients = [int(x) for x in (a.clients or ("1000" if a.quick else "1000,5000,10000")).split(",") if x]
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    for s in a.servers:
        if s not in SERVERS:
            ap.error(f"unknown server {s!r}; choose from {', '.join(SERVERS)}")
    if a.stalled is None:
        a.stalled = 0.0 if a.quick else 0.05
    if a.duration is None:
        a.duration = 10.0 if a.quick else 15.0
    return a


def main(argv: list[str] | None = None) -> int:
    """Run the matrix, print tables, write JSON; always clean up children."""
    args = parse_args(argv)
    tables = netavark_tables()
    if tables:
        print(
            "\n*** podman's NETAVARK nft tables exist: loopback traffic is conntracked and every figure\n"
            f"*** is about 2x slower than without them: {', '.join(tables)}\n",
            file=sys.stderr,
        )
        if not args.allow_netavark:
            print("refusing to run; remove them or pass --allow-netavark", file=sys.stderr)
            return 2
    fd_limit = raise_fd_limit()
    if max([*args.clients, args.stalled_clients]) + 64 > fd_limit:
        print(f"warning: fd limit {fd_limit} is low for {max(args.clients)} clients", file=sys.stderr)
    build_loadgen()

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # even when started with SIGINT ignored (background job)
    runs: list[dict[str, Any]] = []
    result: dict[str, Any] = {"meta": meta(args, fd_limit), "runs": runs}
    try:
        for server in args.servers:
            for n in args.clients:
                runs.append(one_run(server, n, 0.0, args.duration, args))
            if args.stalled > 0:
                if args.stalled_clients not in args.clients:
                    runs.append(one_run(server, args.stalled_clients, 0.0, args.duration, args))
                runs.append(one_run(server, args.stalled_clients, args.stalled, args.stalled_duration, args))
    except KeyboardInterrupt:
        print("interrupted; stopping children", file=sys.stderr)
        result["interrupted"] = True
    finally:
        stop_all()
    result["stalled_comparison"] = stalled_comparison(runs, args.stalled_clients)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print()
    print(table(runs))
    if result["stalled_comparison"]:
        print()
        print(stalled_table(result["stalled_comparison"]))
    print(f"\nJSON: {args.out}")
    return 1 if result.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
