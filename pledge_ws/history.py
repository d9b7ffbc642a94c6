"""The kept tick history that recovery reads: in this worker's memory, and in Redis.

Why two places: a recovery served from memory costs no I/O and no JSON (each entry keeps its
encoded price frame), which is what lets a thousand clients recover at once; Redis is the
shared record every worker of every instance can read when its own memory cannot prove the
client's gap is closed (it missed bus messages, or it just started).

In Redis each symbol's history is a Stream, ``pledge_ws:stream:<SYMBOL>``, whose entry IDs are
the exchange sequence (``<seq>-0``), with fields ``t`` (the tick's JSON) and ``p`` (``prev``:
the sequence its publisher accepted just before, empty if unknown; see recovery.py). Why a
Stream rather than a list (bench/history_store.py measures it): ``XRANGE`` from the client's
sequence reads only what it missed, and an explicit ID not above the stream's top is refused
by Redis itself, so a replayed or stale append can never put an older price after a newer
one. The append runs as a script that turns that refusal into a no-op, so a write retried
after a failure does not fail forever. Trimmed to exactly ``limit`` entries (``MAXLEN =``).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable

import redis

from pledge_ws.fencing import RESET_AFTER_MS
from pledge_ws.protocol import price_payload, text_frame
from pledge_ws.recovery import Entry
from pledge_ws.ticks import Tick, TickError

log = logging.getLogger(__name__)

STREAM_PREFIX = "pledge_ws:stream:"
MAX_STREAM_ID = 2**64 - 1  # a Stream ID's first part is an unsigned 64-bit integer

# Append if the ID is above the stream's top, else do nothing (0): Redis refuses the XADD.
# Any other refusal (NOREPLICAS, OOM, ...) is returned as the error it is: the writer keeps its
# batch and retries, where a no-op would have taken the tick as written.
# One exception: the exchange's sequence restarted (the same rule as ticks.SequenceGuard and
# fencing.py: a lower sequence with an exchange time RESET_AFTER_MS past the top's). Then the
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


def stream_key(symbol: str) -> str:
    return f"{STREAM_PREFIX}{symbol}"


def entry_for(tick: Tick, prev: int | None) -> Entry:
    return Entry(tick.order, prev, text_frame(price_payload(tick)))


class LocalHistory:
    """The last ``limit`` accepted ticks per symbol, each with its ``prev`` link and frame.

    Fed with every tick this worker accepts, in order (the sequence guard runs first). A tick's
    ``prev`` is the one accepted before it here, unless :meth:`mark_gap` said ticks may have
    been missed since (the bus was down): then None, and the chain breaks there.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._orders: dict[str, list[int]] = {}
        self._entries: dict[str, list[Entry]] = {}
        self._gap: set[str] = set()

    def append(self, tick: Tick) -> Entry:
        symbol = tick.symbol
        self._entries.setdefault(symbol, [])
        orders = self._orders.setdefault(symbol, [])
        if orders and tick.order <= orders[-1]:
            # The exchange's sequence restarted (ticks.SequenceGuard let it through): the old
            # sequence space cannot be searched together with the new one, so it is dropped.
            del orders[:]
            del self._entries[symbol][:]
        prev = None if symbol in self._gap or not orders else orders[-1]
        self._gap.discard(symbol)
        entry = entry_for(tick, prev)
        self._add(symbol, entry)
        return entry

    def load(self, symbol: str, entries: Iterable[Entry]) -> None:
        """Entries read from Redis at start, oldest first; their ``prev`` links are kept."""
        for entry in entries:
            orders = self._orders.setdefault(symbol, [])
            if not orders or entry.order > orders[-1]:
                self._entries.setdefault(symbol, [])
                self._add(symbol, entry)

    def _add(self, symbol: str, entry: Entry) -> None:
        entries, orders = self._entries[symbol], self._orders[symbol]
        entries.append(entry)
        orders.append(entry.order)
        if len(orders) >= 2 * self.limit:  # trim in batches: amortized O(1) per append
            del entries[: -self.limit]
            del orders[: -self.limit]

    def last_order(self, symbol: str) -> int | None:
        orders = self._orders.get(symbol)
        return orders[-1] if orders else None

    def mark_gap(self, symbols: Iterable[str]) -> None:
        self._gap.update(symbols)

    def since(self, symbol: str, order: int) -> list[Entry]:
        """Kept entries with sequence >= ``order`` (within the last ``limit``), oldest first."""
        orders = self._orders.get(symbol)
        if not orders:
            return []
        first = max(bisect.bisect_left(orders, order), len(orders) - self.limit)
        return self._entries[symbol][first:]

    def prev_of(self, symbol: str, order: int) -> int | None:
        """The ``prev`` link of the kept entry ``order`` (None if it is not kept)."""
        orders = self._orders.get(symbol) or []
        index = bisect.bisect_left(orders, order)
        if index < len(orders) and orders[index] == order:
            return self._entries[symbol][index].prev
        return None


class RedisHistory:
    """The shared history in Redis Streams: appended by the feed holder's writer, read by anyone."""

    def __init__(self, client: redis.Redis, local: LocalHistory) -> None:
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

    def tail(self, symbol: str) -> tuple[list[Tick], list[Entry]]:
        """The whole kept history of ``symbol`` (ticks and entries), oldest first; read at start."""
        try:
            raw = self.client.xrevrange(stream_key(symbol), count=self.limit)
        except redis.RedisError as exc:
            log.warning("could not read the history of %s: %s", symbol, exc, extra={"event": "redis_error"})
            return [], []
        ticks: list[Tick] = []
        entries: list[Entry] = []
        for _id, fields in reversed(raw):
            tick = _tick(fields)
            if tick is not None:
                ticks.append(tick)
                entries.append(entry_for(tick, _prev(fields)))
        return ticks, entries

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
