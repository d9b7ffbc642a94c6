"""A seeded fault campaign on the real processes, judged by an independent checker.

    .venv/bin/python bench/chaos.py --seed N --minutes M --out DIR [--clients 200] [--slice A:B]

Starts a Redis master and replica, three sentinels, the simulator and two instances of two
workers on the Sentinel URL (chaoslib/topology.py); about 200 clients of three kinds
(chaoslib/clients.py); then the schedule the seed draws (chaoslib/schedule.py: the same seed,
the same faults), overlapping where they fall so. Every frame every client receives and every
write Redis receives to the price keys and Streams is recorded; afterwards chaoslib/checker.py
judges the invariants and DIR/report.json and DIR/timeline.png are written. Exit 0 only when
every invariant held. Loopback only; bounded by --minutes plus start-up and a minute at most.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from chaoslib import checker, faults, report, schedule
from chaoslib.clients import start_clients
from chaoslib.monitor import RedisRecorder, Sampler
from chaoslib.topology import Deployment

import harness


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=200, help="split 50/30/20 %% steady/reconnecting/slow")
    parser.add_argument("--mean-gap", type=float, default=25.0, help="mean seconds between fault starts")
    parser.add_argument(
        "--slice",
        metavar="A:B",
        help="replay only the faults the seed's M-minute schedule starts between A and B seconds, "
        "from 20 s into a run of B-A+65 s (to look again at what a long run found)",
    )
    args = parser.parse_args(argv)
    args.span = None
    if args.slice:
        try:
            start, end = (float(x) for x in args.slice.split(":"))
        except ValueError:
            parser.error("--slice takes A:B, seconds, e.g. 1200:1340")
        if not 0 <= start < end <= args.minutes * 60:
            parser.error(f"--slice {args.slice}: need 0 <= A < B <= {args.minutes * 60:g}")
        args.span = (start, end)
    return args


def campaign(args: argparse.Namespace) -> tuple[dict[str, Any], list[checker.Connection]]:
    args.out.mkdir(parents=True, exist_ok=True)
    plan = schedule.draw(args.seed, args.minutes, mean_gap_s=args.mean_gap)
    if args.span:
        plan = schedule.cut(plan, *args.span)
        args.minutes = (args.span[1] - args.span[0] + 65.0) / 60.0
    dep = Deployment(Path(tempfile.gettempdir()))  # its Redis dirs and metrics files: not in DIR
    dep.start()
    t0 = time.monotonic()
    stop = threading.Event()
    recorder, sampler = RedisRecorder(dep, stop, t0), Sampler(dep, stop, t0)
    recorder.start()
    sampler.start()
    counts = {"steady": args.clients // 2, "reconnecting": args.clients * 3 // 10}
    counts["slow"] = args.clients - sum(counts.values())
    clients, clients_stop = start_clients(dep.ws_urls(), counts, args.seed, t0)
    storm = faults.Storm(dep.ws_urls())
    done: list[dict[str, Any]] = []
    threads = []
    end_s = args.minutes * 60.0
    for fault in plan:
        while time.monotonic() - t0 < fault.at_s:
            time.sleep(0.05)
        notes: dict[str, Any] = {}
        record = {**fault.to_json(), "started_s": round(time.monotonic() - t0, 2), "notes": notes}
        done.append(record)
        thread = threading.Thread(target=_do, args=(dep, fault, notes, storm), daemon=True)
        thread.start()
        threads.append(thread)
        print(f"{record['started_s']:8.1f} s  {fault.kind} {fault.duration_s:g}s {fault.params or ''}", flush=True)
    while time.monotonic() - t0 < end_s:
        time.sleep(0.2)
    for thread in threads:
        thread.join(30)
    clients_stop.set()
    for client in clients:
        client.join(5)
    stop.set()
    recorder.join(5)
    sampler.join(5)
    connections = [conn for client in clients for conn in client.connections]
    return judge(args, plan, done, clients, connections, recorder, sampler, end_s), connections


def _do(dep: Deployment, fault: schedule.Fault, notes: dict[str, Any], storm: Any) -> None:
    try:
        faults.run(dep, fault, notes, storm)
    except Exception as exc:  # a fault that could not be done is reported, not fatal
        notes["error"] = f"{type(exc).__name__}: {exc}"[:200]


def written_ticks(appends: list[tuple[float, str, int]], plan: list[schedule.Fault]) -> dict[str, list[int]]:
    """Stream appends that can have landed: above the stream's top so far (Redis refuses the
    rest), the top forgotten at a sequence reset of that symbol."""
    resets = sorted((f.at_s, f.params["symbol"]) for f in plan if f.kind == "sequence_reset")
    top: dict[str, int] = {}
    kept: dict[str, set[int]] = {}
    for t, symbol, seq in appends:
        while resets and resets[0][0] <= t:
            top.pop(resets.pop(0)[1], None)
        if seq > top.get(symbol, -1):
            top[symbol] = seq
            kept.setdefault(symbol, set()).add(seq)
    return {symbol: sorted(seqs) for symbol, seqs in kept.items()}


def judge(args, plan, done, clients, connections, recorder, sampler, end_s) -> dict[str, Any]:
    windows = schedule.windows(plan)
    bounds = checker.Bounds()
    written = written_ticks(recorder.appends, plan)
    seen: dict[str, set[int]] = {s: set(v) for s, v in written.items()}
    for conn in connections:
        for frame in conn.frames:
            if frame[1] == checker.PRICE:
                seen.setdefault(frame[2], set()).add(frame[3])
    outside, told = checker.check_freshness(connections, windows, end_s, bounds)
    invariants = {
        "order": checker.check_order(connections),
        "recovery": checker.check_recovery(connections, written, seen),
        "keys_never_go_back": checker.check_keys(recorder.writes),
        "fresh_outside_faults": outside,
        "told_inside_faults": told,
        "one_exchange_link": checker.check_links(sampler.links, windows, bounds),
        "memory_bounded": checker.check_memory(sampler.rss, bounds),
    }
    for record in done:
        ends = record["at_s"] + record["duration_s"]
        record["longest_price_gap_s"] = checker.longest_gap(connections, record["at_s"], record["window_end_s"])
        record["time_to_one_exchange_link_s"] = checker.time_to_one_link(sampler.links, ends)
    ok = all(v.checked > 0 and v.violations == 0 for k, v in invariants.items() if k != "memory_bounded")
    ok = ok and invariants["memory_bounded"].violations == 0
    return {
        "seed": args.seed,
        "minutes": args.minutes,
        "slice": args.slice,
        "clients": {kind: sum(1 for c in clients if c.kind == kind) for kind in ("steady", "reconnecting", "slow")},
        "connections": len(connections),
        "frames": sum(len(c.frames) for c in connections),
        "redis_writes_observed": len(recorder.writes),
        "stream_appends_observed": len(recorder.appends),
        "bounds": bounds.__dict__,
        "faults": done,
        "invariants": {name: verdict.to_json() for name, verdict in invariants.items()},
        "ok": ok,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    harness.raise_fd_limit()
    try:
        result, connections = campaign(args)
    finally:
        harness.stop_all()
    report.write_json(args.out / "report.json", result)
    ran = [schedule.Fault(f["kind"], f["at_s"], f["duration_s"], f["params"]) for f in result["faults"]]
    title = f"pledge-ws fault campaign: seed {args.seed}, {args.minutes:g} minutes, {len(ran)} faults"
    report.draw_timeline(args.out / "timeline.png", connections, ran, args.minutes * 60.0, title)
    print(report.kinds_table(result))
    print(f"report: {args.out / 'report.json'}  ok={result['ok']}")
    for name, verdict in result["invariants"].items():
        print(f"  {name:22s} checked {verdict['checked']:8d}  violations {verdict['violations']}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
