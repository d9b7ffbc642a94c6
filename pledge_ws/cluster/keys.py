"""Every Redis key and channel the service uses, in one place (docs/ha.md, "Redis keys").

``PRICE_KEY`` (default ``plgr_price``, the Go backend's key) is configuration; everything else
lives under :data:`PREFIX`. Tests and tools import these names instead of spelling them.
"""

from __future__ import annotations

PREFIX = "pledge_ws:"

LEADER = f"{PREFIX}leader"  # string: the leader's identity (host:pid:random), with a TTL
TERM = f"{PREFIX}term"  # integer: the last leadership term issued (INCR on acquisition)
FEED_STATUS = f"{PREFIX}feed"  # string: the leader's feed status as JSON, for operators
TICKS_CHANNEL = f"{PREFIX}ticks"  # channel: every accepted tick, as JSON
BEAT_CHANNEL = f"{PREFIX}beat"  # channel: the leader's status with its term, every second


def price_key(symbol: str) -> str:
    """String: the symbol's latest tick as compact JSON (fenced writes only)."""
    return f"{PREFIX}price:{symbol}"


def stream_key(symbol: str) -> str:
    """Stream: the symbol's last ``HISTORY_LIMIT`` ticks, entry IDs ``<seq>-0``."""
    return f"{PREFIX}stream:{symbol}"
