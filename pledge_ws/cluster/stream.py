"""The shared tick history in Redis Streams, which recovery reads when memory cannot prove a gap.

Each worker keeps the window in memory too (core/book.py), and a recovery served from there
costs no I/O; Redis is the shared record every worker of every instance can read when its
own memory cannot prove the client's gap is closed (it missed bus messages, or it just
started).

In Redis each symbol's history is a Stream, ``pledge_ws:stream:<SYMBOL>``, whose entry IDs are
the exchange sequence (``<seq>-0``), with fields ``t`` (the tick's JSON) and ``p`` (``prev``:
the sequence its publisher accepted just before, empty if unknown; see core/recovery.py). Why a
Stream rather than a list (bench/history_store.py measures it): ``XRANGE`` from the client's
sequence reads only what it missed, and an explicit ID not above the stream's top is refused
by Redis itself, so a replayed or stale append can never put an older price after a newer
one. The append runs as a script that turns that refusal into a no-op, so a write retried
after a failure does not fail forever. Trimmed to exactly ``limit`` entries (``MAXLEN =``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis

from pledge_ws.cluster.keys import stream_key
from pledge_ws.core.book import Entry, PriceBook, entry_for
from pledge_ws.core.fencing import RESET_AFTER_MS
from pledge_ws.core.ticks import Tick, TickError

log = logging.getLogger(__name__)

MAX_STREAM_ID = 2**64 - 1  # a Stream ID's first part is an unsigned 64-bit integer

# Append if the ID is above the stream's top, else do nothing (0): Redis refuses the XADD.
# Any other refusal (NOREPLICAS, OOM, ...) is returned as the error it is: the writer keeps its
# batch and retries, where a no-op would have taken the tick as written.
# One exception: the exchange's sequence restarted (the same rule as ticks.SequenceGuard and
# core/fencing.py: a lower sequence with an exchange time RESET_AFTER_MS past the top's). Then the
# old sequence space is dropped (2), or the history would stay frozen at the old top for ever.
APPEND_SCRIPT = """
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '=', ARGV[1], ARGV[2], 't', ARGV[3], 'p', ARGV[4])
if type(added) == 'table' and added['err'] then
  if not string.find(added['err'], 'equal or smaller', 1, true) then return added end
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  if not top then return 0 end
  local fields, top_ts = top[2], nil
  for i = 1, #fields, 2 do
    if fields[i] == 't' then
      local ok, tick = pcall(cjson.decode, fields[i + 1])
      if ok and type(tick) == 'table' then top_ts = tonumber(tick['ts']) end
    end
  end
  if top_ts == nil or tonumber(ARGV[6]) < top_ts + tonumber(ARGV[5]) then return 0 end
  redis.call('DEL', KEYS[1])
  redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[1], ARGV[2], 't', ARGV[3], 'p', '')
  return 2
end
return 1
"""


class RedisHistory:
    """The shared history in Redis Streams: appended by the feed holder's writer, read by anyone."""

    def __init__(self, client: redis.Redis, local: PriceBook) -> None:
        self.client = client
        self.local = local
        self.limit = local.limit
        self._append = client.register_script(APPEND_SCRIPT)

    def append(self, pipe: redis.client.Pipeline, tick: Tick) -> None:
        """Queue the append of ``tick`` on ``pipe`` (the writer's pipeline), with its prev link."""
        if tick.order > MAX_STREAM_ID or tick.order == 0:
            return  # not representable as a Stream ID; the next entry's prev shows the hole
        prev = self.local.prev_of(tick.symbol, tick.order)
        link = "" if prev is None else str(prev)
        args = [self.limit, f"{tick.order}-0", tick.to_json(), link, RESET_AFTER_MS, tick.ts]
        self._append(keys=[stream_key(tick.symbol)], args=args, client=pipe)

    def since(self, symbol: str, order: int) -> list[Entry] | None:
        """Entries with sequence >= ``order``, oldest first; None if Redis cannot be read."""
        if order > MAX_STREAM_ID:
            return []
        try:
            raw = self.client.xrange(stream_key(symbol), min=str(order), max="+", count=self.limit + 1)
        except redis.RedisError as exc:
            log.warning("could not read the history of %s: %s", symbol, exc, extra={"event": "redis_error"})
            return None
        return self._parse(raw)

    def tops(self, symbols: Iterable[str]) -> dict[str, int] | None:
        """The newest sequence in each symbol's Stream (absent: empty); None if unreadable."""
        names = list(symbols)
        try:
            pipe = self.client.pipeline(transaction=False)
            for symbol in names:
                pipe.xrevrange(stream_key(symbol), count=1)
            replies = pipe.execute()
        except redis.RedisError:
            return None
        return {s: int(r[0][0].split(b"-")[0]) for s, r in zip(names, replies, strict=True) if r}

    def tail(self, symbol: str) -> list[Entry]:
        """The whole kept history of ``symbol``, oldest first; read at start."""
        try:
            raw = self.client.xrevrange(stream_key(symbol), count=self.limit)
        except redis.RedisError as exc:
            log.warning("could not read the history of %s: %s", symbol, exc, extra={"event": "redis_error"})
            return []
        return self._parse(list(reversed(raw)))

    def _parse(self, raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Entry]:
        entries = []
        for _id, fields in raw:
            tick = _tick(fields)
            if tick is not None:  # a bad entry is skipped: the next one's prev shows the hole
                entries.append(entry_for(tick, _prev(fields)))
        return entries


def _tick(fields: dict[bytes, bytes]) -> Tick | None:
    try:
        return Tick.from_json(fields.get(b"t", b""))
    except TickError:
        return None


def _prev(fields: dict[bytes, bytes]) -> int | None:
    raw = fields.get(b"p", b"")
    return int(raw) if raw.isdigit() else None
