"""Whether a follower's prices are current, judged by what it actually receives.

Pure: fed with what arrives on the bus (ticks and the leader's heartbeats, each with its
leadership term) and a ``now``; answers "live?" and "what does the leader say about its feed?".

Why not the ``pledge_ws:feed`` status key: it lives 9 s, so after the leader died it still
said "connected" for seconds during a real outage, and then the new leader's first "not
connected yet" made followers report an outage while prices were already flowing. A
heartbeat or a tick heard within :data:`LIVE_WINDOW` is proof; silence is the outage.

It also keeps the newest term heard: ticks and beats of an older term come from a deposed
leader and are refused (:meth:`Liveness.tick` returns False), as long as the newest term's
leader is itself heard. Once it has been silent for the window, a lower term is accepted:
a failover that lost several term increments can make the next leader's term lower than one
a follower already heard, and that follower must not ignore the only live leader for ever.
(A deposed leader cannot publish by then anyway: its lease lapsed, cluster/leader.py.)
"""

from __future__ import annotations

import json

from pledge_ws.core.readiness import FeedStatus

LIVE_WINDOW = 2.5  # the leader beats every second (cluster/leader.py): two missed beats is an outage


class Liveness:
    def __init__(self, window: float = LIVE_WINDOW) -> None:
        self.window = window
        self.newest_term = 0
        self._heard_at: float | None = None  # a tick, or a beat saying the feed delivers
        self._newest_at: float | None = None  # when the newest term was last heard
        self._beat_at: float | None = None
        self._status = FeedStatus()

    def _admit(self, term: int, now: float, heard: bool) -> bool:
        if term < self.newest_term and self._newest_at is not None and now - self._newest_at <= self.window:
            return False
        self.newest_term = term
        if heard:
            self._newest_at = now
        return True

    def tick(self, term: int, now: float, heard: bool = True) -> bool:
        """A tick from the bus (``heard``) or read back from Redis; False: an older term."""
        if not self._admit(term, now, heard):
            return False
        if heard:
            self._heard_at = now
        return True

    def beat(self, raw: bytes | str, now: float) -> bool:
        """A leader heartbeat; False if malformed. An older term's beat is ignored."""
        try:
            status = json.loads(raw)
        except (ValueError, RecursionError):
            return False
        if not isinstance(status, dict):
            return False
        term = status.get("term")
        if isinstance(term, bool) or not isinstance(term, int) or term < 0:
            return False
        if not self._admit(term, now, heard=True):
            return True
        self._beat_at = now
        self._status = FeedStatus.from_beat(status)
        if self._status.delivering:
            self._heard_at = now
        return True

    def live(self, now: float) -> bool:
        return self._heard_at is not None and now - self._heard_at <= self.window

    def leader_feed(self, now: float) -> FeedStatus:
        """The leader's feed status from its last heartbeat, if recent; else why not known."""
        if self._beat_at is None:
            return FeedStatus(error="no heartbeat from a leader yet")
        silent = now - self._beat_at
        if silent > self.window:
            return FeedStatus(error=f"no heartbeat from the leader for {silent:.1f}s")
        return self._status
