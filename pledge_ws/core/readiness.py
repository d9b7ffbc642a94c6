"""What a worker reports about itself: the feed's status as a typed value, and the readiness
rule (``/readyz``, docs/protocol.md) as a pure function of what the worker knows.

The feed holder (worker/holder.py) makes a :class:`FeedStatus`; the leader publishes it in
its heartbeat and followers read it back with :meth:`FeedStatus.from_beat`, so "is the feed
delivering" is answered by one property everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SOURCES = ("ws", "rest")


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The exchange feed as its holder sees it: ``source`` says where prices come from now
    (``"ws"``: the WebSocket subscribed; ``"rest"``: the REST fallback answering; None: nowhere)."""

    connected: bool = False  # the exchange WebSocket is subscribed
    source: str | None = None
    error: str = ""
    unavailable: tuple[str, ...] = ()  # symbols the exchange says it does not know

    @property
    def delivering(self) -> bool:
        return self.source is not None

    def to_beat(self) -> dict[str, object]:
        """The fields published in the leader's heartbeat (and kept in ``pledge_ws:feed``)."""
        return {
            "connected": self.connected,
            "delivering": self.delivering,
            "source": self.source,
            "error": self.error,
            "unavailable": list(self.unavailable),
        }

    @classmethod
    def from_beat(cls, raw: Mapping[str, object]) -> FeedStatus:
        """Read a heartbeat's fields back; anything malformed reads as "not delivering"."""
        connected = raw.get("connected") is True
        source = raw.get("source")
        if source not in SOURCES:
            # A heartbeat without ``source`` (an older leader during a rolling upgrade) said
            # ``delivering``, or before that only ``connected``.
            delivering = raw.get("delivering", connected) is True
            source = "ws" if delivering else None
        unavailable = raw.get("unavailable")
        names = tuple(s for s in unavailable if isinstance(s, str)) if isinstance(unavailable, list) else ()
        error = raw.get("error")
        return cls(connected, source, error if isinstance(error, str) else "", names)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class WorkerView:
    """Everything the readiness rule looks at, gathered by the runtime."""

    shutting_down: bool
    feed: FeedStatus
    primary_symbol: str
    redis: bool  # REDIS_URL is set
    redis_ok: bool = True  # the elector's last command got through
    bus_up: bool = True
    bus_error: str = ""
    leader: bool = False
    writes_ok: bool = True
    write_error: str = ""


def not_ready_reasons(view: WorkerView) -> list[str]:
    """Why ``/readyz`` is 503 now (empty: ready). Ready means prices are current from either
    source and Redis is reachable, where configured."""
    reasons = []
    if view.shutting_down:
        reasons.append("shutting down")
    if not view.feed.delivering:
        reasons.append(f"exchange feed not delivering (WebSocket: {view.feed.error}; no REST fallback answer)")
    if view.primary_symbol in view.feed.unavailable:
        reasons.append(f"primary symbol {view.primary_symbol} not found on the exchange")
    if view.redis:
        if not view.redis_ok:
            reasons.append("redis unreachable")
        if not view.bus_up:
            reasons.append(f"tick bus not subscribed: {view.bus_error}")
        if view.leader and not view.writes_ok:
            reasons.append(f"redis writes failing: {view.write_error}")
    return reasons
