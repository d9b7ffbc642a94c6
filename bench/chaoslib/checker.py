"""The campaign's independent checker: what clients saw and what Redis was told, judged afterwards.

Pure and separate from the service: it imports nothing of pledge_ws and restates each rule from
the protocol document (docs/protocol.md), the way a client would. Input is the history the
recorders kept (plain tuples); output is, per invariant, how many cases were checked, how many
violated it, and the first violations in full.

Invariants:
- ``order``: per connection and symbol, every price newer than the last (a higher seq, or a lower
  one at least 30 s later by the exchange's clock: a restarted sequence).
- ``recovery``: every symbol of a ``since=`` is answered first by a code 2 frame; a "recovered"
  replay is exactly the ticks above the position, in order, none invented and none of those
  Redis was given left out.
- ``keys_never_go_back``: every write of a latest-price key Redis received is newer than the
  last one it received for that key.
- ``fresh_outside_faults``: outside the fault windows (and a settling time after each), a
  connected client never waits more than ``bound_outside_s`` for a price.
- ``told_inside_faults``: inside them, never more than ``bound_inside_s`` without a price, unless
  the last thing it was told is "price feed interrupted".
- ``one_exchange_link``: once the faults are over, the exchange sees exactly one connection.
- ``memory_bounded``: no worker's memory grows over the run beyond the stated margin.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import Any

RESET_AFTER_MS = 30_000
PRICE, PONG, STATUS, ERROR = 0, 1, 2, -1
FEED_INTERRUPTED = "price feed interrupted"
FIRST = 5  # violations kept in full per invariant

# A frame as a recorder keeps it: (t, code, symbol, seq, ts, extra): seq -1 and ts 0 when
# absent; extra is the status ("recovered"/"not recovered") with its count, or an error's text.
Frame = tuple[float, int, str, int, int, Any]


@dataclass
class Connection:
    client: str
    kind: str
    opened_at: float
    closed_at: float | None
    since: dict[str, int] | None
    frames: list[Frame] = field(default_factory=list)


@dataclass
class Bounds:
    bound_outside_s: float = 10.0
    bound_inside_s: float = 30.0
    settle_s: float = 20.0  # after a fault window, still judged as inside
    first_price_s: float = 5.0  # a new connection's grace for its first frame
    link_settle_s: float = 30.0  # after the last fault, until one exchange link must hold
    memory_ratio: float = 1.3
    memory_slack_bytes: int = 30 * 1024 * 1024
    memory_min_life_s: float = 300.0


@dataclass
class Verdict:
    checked: int = 0
    violations: int = 0
    first: list[dict[str, Any]] = field(default_factory=list)

    def case(self, ok: bool, detail: dict[str, Any] | None = None) -> None:
        self.checked += 1
        if not ok:
            self.violations += 1
            if len(self.first) < FIRST:
                self.first.append(detail or {})

    def to_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "violations": self.violations, "first": self.first}


def newer(last: tuple[int, int] | None, seq: int, ts: int) -> bool:
    """docs/protocol.md, "Order": a higher seq, or a lower one 30 s or more later."""
    if last is None:
        return True
    return seq > last[0] or (seq < last[0] and ts >= last[1] + RESET_AFTER_MS)


def check_order(connections: list[Connection]) -> Verdict:
    verdict = Verdict()
    for conn in connections:
        last: dict[str, tuple[int, int]] = {}
        for t, code, symbol, seq, ts, _ in conn.frames:
            if code != PRICE:
                continue
            ok = newer(last.get(symbol), seq, ts)
            verdict.case(ok, {"client": conn.client, "t": t, "symbol": symbol, "seq": seq, "after": last.get(symbol)})
            last[symbol] = (seq, ts)
    return verdict


def check_recovery(connections: list[Connection], written: dict[str, list[int]], seen: dict[str, set[int]]) -> Verdict:
    """``written``: per symbol, the sorted seqs Redis's Streams were given; ``seen``: every seq
    any client or Redis saw (a replayed tick must be one of them)."""
    verdict = Verdict()
    for conn in connections:
        if not conn.since:
            continue
        for symbol, position in conn.since.items():
            frames = [f for f in conn.frames if f[2] == symbol and f[1] in (PRICE, STATUS)]
            lived = (conn.closed_at or float("inf")) - conn.opened_at
            if not frames:
                if lived > 5:
                    verdict.case(False, {"client": conn.client, "symbol": symbol, "why": "no answer to since"})
                continue
            head = frames[0]
            if head[1] != STATUS:
                verdict.case(False, {"client": conn.client, "symbol": symbol, "why": "a price before the status"})
                continue
            status, count = head[5]
            if status != "recovered":
                verdict.case(True)
                continue
            replay = [f[3] for f in frames[1 : 1 + count] if f[1] == PRICE]
            verdict.case(*_replay_ok(conn.client, symbol, position, count, replay, written, seen))
    return verdict


def _replay_ok(
    client: str, symbol: str, position: int, count: int, replay: list[int], written: dict, seen: dict
) -> tuple[bool, dict[str, Any]]:
    detail = {"client": client, "symbol": symbol, "since": position, "count": count, "replay": replay[:20]}
    if len(replay) < count:
        return True, detail  # the connection ended mid-replay: nothing to judge
    if any(b <= a for a, b in zip([position, *replay], replay, strict=False)):
        return False, {**detail, "why": "not strictly increasing from the position"}
    invented = [seq for seq in replay if seq not in seen.get(symbol, set())]
    if invented:
        return False, {**detail, "why": "ticks nobody saw", "invented": invented[:10]}
    if replay:
        kept = written.get(symbol, [])
        lo, hi = bisect.bisect_right(kept, position), bisect.bisect_right(kept, replay[-1])
        missing = sorted(set(kept[lo:hi]) - set(replay))
        if missing:
            return False, {**detail, "why": "written ticks left out", "missing": missing[:10]}
    return True, detail


def check_keys(writes: list[tuple[float, str, int, int]]) -> Verdict:
    """``writes``: (t, key, seq, ts) of every latest-price SET Redis received, in order."""
    verdict = Verdict()
    last: dict[str, tuple[int, int]] = {}
    for t, key, seq, ts in writes:
        ok = newer(last.get(key), seq, ts) or last.get(key) == (seq, ts)  # a rewrite of the same
        verdict.case(ok, {"t": t, "key": key, "seq": seq, "ts": ts, "after": last.get(key)})
        if ok:
            last[key] = (seq, ts)
    return verdict


def inside(windows: list[tuple[float, float]], t: float, settle: float) -> bool:
    return any(start <= t <= end + settle for start, end in windows)


def check_freshness(
    connections: list[Connection], windows: list[tuple[float, float]], end_s: float, bounds: Bounds
) -> tuple[Verdict, Verdict]:
    """Sampled each second of each connection's life (after its first-price grace)."""
    outside, told = Verdict(), Verdict()
    for conn in connections:
        prices = [f[0] for f in conn.frames if f[1] == PRICE]
        notices = [f[0] for f in conn.frames if f[1] == ERROR and f[5] == FEED_INTERRUPTED]
        until = min(conn.closed_at if conn.closed_at is not None else end_s, end_s)
        t = conn.opened_at + bounds.first_price_s
        while t <= until:
            i = bisect.bisect_right(prices, t)
            last_price = prices[i - 1] if i else conn.opened_at
            wait = t - last_price
            j = bisect.bisect_right(notices, t)
            told_stale = j > 0 and notices[j - 1] >= last_price
            if inside(windows, t, bounds.settle_s):
                ok = wait <= bounds.bound_inside_s or told_stale
                told.case(ok, {"client": conn.client, "kind": conn.kind, "t": round(t, 1), "waited_s": round(wait, 1)})
            else:
                ok = wait <= bounds.bound_outside_s
                outside.case(
                    ok, {"client": conn.client, "kind": conn.kind, "t": round(t, 1), "waited_s": round(wait, 1)}
                )
            t += 1.0
    return outside, told


def check_links(links: list[tuple[float, int]], windows: list[tuple[float, float]], bounds: Bounds) -> Verdict:
    verdict = Verdict()
    calm = (windows[-1][1] if windows else 0.0) + bounds.link_settle_s
    for t, count in links:
        if t >= calm:
            verdict.case(count == 1, {"t": round(t, 1), "exchange_connections": count})
    return verdict


def check_memory(rss: dict[int, list[tuple[float, int]]], bounds: Bounds) -> Verdict:
    verdict = Verdict()
    for pid, samples in rss.items():
        if not samples or samples[-1][0] - samples[0][0] < bounds.memory_min_life_s:
            continue
        born = samples[0][0]
        settled = [s for s in samples if s[0] >= born + 60] or samples
        first, last = settled[0][1], samples[-1][1]
        limit = first * bounds.memory_ratio + bounds.memory_slack_bytes
        verdict.case(last <= limit, {"pid": pid, "first_bytes": first, "last_bytes": last, "limit_bytes": int(limit)})
    return verdict


def longest_gap(connections: list[Connection], start: float, end: float) -> float:
    """The longest wait between prices any connected client had that overlaps [start, end]."""
    worst = 0.0
    for conn in connections:
        times = [conn.opened_at] + [f[0] for f in conn.frames if f[1] == PRICE]
        times.append(conn.closed_at if conn.closed_at is not None else end)
        for a, b in itertools.pairwise(times):
            if b >= start and a <= end:
                worst = max(worst, b - a)
    return round(worst, 2)


def time_to_one_link(links: list[tuple[float, int]], after: float, hold_s: float = 3.0) -> float | None:
    """Seconds from ``after`` until the exchange saw exactly one link for ``hold_s`` in a row."""
    run_start = None
    for t, count in links:
        if t < after:
            continue
        if count == 1:
            run_start = t if run_start is None else run_start
            if t - run_start >= hold_s:
                return round(run_start - after, 2)
        else:
            run_start = None
    return None
