"""The fault schedule of a campaign: drawn from a seed, so the same seed gives the same faults.

Pure: a seed and a length in, a list of :class:`Fault` out. Faults arrive as a Poisson process
(mean gap ``mean_gap_s``), each of a kind drawn from :data:`MENU` with its own duration, so they
overlap when one outlasts the gap to the next; none starts in the first ``warmup_s`` or the last
``quiet_s`` (the run ends with a quiet stretch in which the invariants of a healthy deployment
are judged).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace

# kind: (weight, shortest, longest duration in seconds; 0 = instantaneous, judged for a window)
MENU: dict[str, tuple[int, float, float]] = {
    "leader_kill9": (3, 0, 0),
    "leader_sigstop": (3, 3, 9),
    "master_kill_restart": (2, 6, 14),
    "sentinel_failover": (2, 0, 0),
    "sentinels_down": (2, 5, 15),
    "redis_restart": (1, 0, 0),
    "exchange_ws_down": (3, 5, 25),
    "rest_429": (2, 3, 12),
    "rest_5xx": (2, 0, 0),
    "error_401": (2, 0, 0),
    "error_509": (2, 0, 0),
    "dead_instance_server": (2, 5, 20),
    "sequence_reset": (1, 0, 0),
    "worker_sigterm": (2, 0, 0),
    "connection_storm": (2, 3, 8),
}
INSTANT_WINDOW_S = 10.0  # how long an instantaneous fault counts as "in a fault window"


@dataclass(frozen=True)
class Fault:
    kind: str
    at_s: float
    duration_s: float
    params: dict[str, object] = field(default_factory=dict)

    @property
    def window_end_s(self) -> float:
        return self.at_s + max(self.duration_s, INSTANT_WINDOW_S)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "window_end_s": round(self.window_end_s, 3)}


def draw(
    seed: int,
    minutes: float,
    mean_gap_s: float = 25.0,
    warmup_s: float = 20.0,
    quiet_s: float = 45.0,
    symbols: tuple[str, ...] = ("PLGR-USDT", "BTC-USDT"),
) -> list[Fault]:
    """The campaign's faults, in time order; every fault ends before the quiet tail."""
    rng = random.Random(seed)
    kinds = sorted(MENU)
    weights = [MENU[kind][0] for kind in kinds]
    end = minutes * 60.0 - quiet_s
    faults: list[Fault] = []
    at = warmup_s + rng.expovariate(1.0 / mean_gap_s)
    while at < end:
        kind = rng.choices(kinds, weights)[0]
        _, low, high = MENU[kind]
        duration = round(rng.uniform(low, high), 2) if high else 0.0
        duration = min(duration, max(0.0, end - at))
        faults.append(Fault(kind, round(at, 2), duration, _params(kind, rng, symbols)))
        at += rng.expovariate(1.0 / mean_gap_s)
    return faults


def _params(kind: str, rng: random.Random, symbols: tuple[str, ...]) -> dict[str, object]:
    if kind == "rest_5xx":
        return {"count": rng.randint(3, 20), "mode": rng.choice(["500", "502", "badjson"])}
    if kind == "sequence_reset":
        return {"symbol": rng.choice(symbols)}
    if kind == "worker_sigterm":
        return {"instance": rng.randint(0, 1), "worker": rng.randint(0, 1)}
    if kind == "connection_storm":
        return {"clients": rng.randint(150, 300)}
    return {}


def cut(faults: list[Fault], start_s: float, end_s: float, warmup_s: float = 20.0) -> list[Fault]:
    """The faults that start in [start_s, end_s), moved to begin ``warmup_s`` into a run: a
    finding of a long campaign replayed in minutes, with the same faults in the same rhythm."""
    shift = warmup_s - start_s
    return [replace(f, at_s=round(f.at_s + shift, 3)) for f in faults if start_s <= f.at_s < end_s]


def windows(faults: list[Fault]) -> list[tuple[float, float]]:
    """The fault windows merged where they overlap: [(start, end)], in time order."""
    merged: list[tuple[float, float]] = []
    for fault in sorted(faults, key=lambda f: f.at_s):
        start, end = fault.at_s, fault.window_end_s
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
