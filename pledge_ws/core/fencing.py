"""No stale writer: the rule that decides whether a latest-price write may land.

Pure: plain values in, a verdict out. The same rule runs in Redis as a Lua script
(:data:`WRITE_LATEST_SCRIPT`), atomically with the write, against what the key holds; this
module is its specification and the unit tests pin both to it.

Why each part is there:

- ``not_leader``: the script first checks that the leader key still holds the writer's
  identity, at the moment Redis runs the write. A leader that froze past its TTL, or was
  deposed by a failover that lost its key, is refused even if its lease clock is wrong.
- ``older_term``: each leadership term has a number from Redis (``INCR`` on acquisition).
  A write stamped with an older term than the stored value's is refused, so a deposed leader
  whose write was already in flight cannot overwrite its successor.
- ``not_newer``: the exchange sequence must move forward. Ordering by ``(term, seq)`` would
  not be enough: a new leader whose book is stale (its bus was down) would then write old
  prices under a higher term. So a higher term earns nothing by itself.
- ``reset``: an exchange that resets its sequence (maintenance, a restarted simulator) would
  otherwise freeze the keys for ever at the old, higher sequence. A tick whose sequence is
  lower but whose exchange time is at least :data:`RESET_AFTER_MS` later than the stored
  tick's is taken as the new sequence space: it is a newer price, never an older one (time is
  the exchange's own ``time`` field, compared with the stored tick's, not a local clock).

Sequences are decimal strings of up to 30 digits (beyond a Lua double's 2**53), so both sides
compare them as digit strings: strip leading zeros, then longer is larger, then lexicographic.
"""

from __future__ import annotations

from dataclasses import dataclass

WRITTEN = "written"
NOT_LEADER = "not_leader"
OLDER_TERM = "older_term"
NOT_NEWER = "not_newer"
RESET = "reset"  # written: the exchange's sequence restarted
REASONS = (NOT_LEADER, OLDER_TERM, NOT_NEWER)
RESET_AFTER_MS = 30_000


@dataclass(frozen=True)
class Stored:
    """What a latest-price key holds, as far as fencing cares."""

    term: int
    sequence: str
    ts: int


def normalize_sequence(sequence: str) -> str:
    return sequence.lstrip("0") or "0"


def sequence_above(a: str, b: str) -> bool:
    """``a > b`` for decimal digit strings of any length."""
    a, b = normalize_sequence(a), normalize_sequence(b)
    return (len(a), a) > (len(b), b)


def decide(
    stored: Stored | None,
    term: int,
    sequence: str,
    ts: int,
    holds_lock: bool = True,
    reset_after_ms: int = RESET_AFTER_MS,
) -> str:
    """``WRITTEN``/``RESET`` if the write may land, else the refusal reason."""
    if not holds_lock:
        return NOT_LEADER
    if stored is None:
        return WRITTEN
    if term < stored.term:
        return OLDER_TERM
    if sequence_above(sequence, stored.sequence):
        return WRITTEN
    if sequence_above(stored.sequence, sequence) and ts >= stored.ts + reset_after_ms:
        return RESET
    return NOT_NEWER


def lease_left(renewed_at: float | None, ttl: float, margin: float, now: float) -> float:
    """Seconds this process may still act as leader since its last renewal *was sent*.

    Redis starts the key's TTL when it receives the renewal, which is after it was sent, so
    no other process can take the lock before ``renewed_at + ttl``. Stopping ``margin``
    earlier leaves room for a write already on its way. Zero or less: stop writing.
    """
    if renewed_at is None:
        return 0.0
    return renewed_at + ttl - margin - now


# KEYS: leader key, latest-price key[, primary key (the primary symbol only)]
# ARGV: identity, term, normalized sequence, ts, tick JSON, price, reset_after_ms
# Returns "written", "reset" or a refusal reason; the same rule as decide().
WRITE_LATEST_SCRIPT = """
local function norm(s) return (string.gsub(s, '^0+', '')) end
local function above(a, b)
  a = norm(a); b = norm(b)
  if a == '' then a = '0' end
  if b == '' then b = '0' end
  if #a ~= #b then return #a > #b end
  return a > b
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'not_leader' end
local term = tonumber(ARGV[2])
local verdict = 'written'
local raw = redis.call('GET', KEYS[2])
if raw then
  local ok, stored = pcall(cjson.decode, raw)
  if ok and type(stored) == 'table' and type(stored['seq']) == 'string' then
    local stored_term = tonumber(stored['term']) or 0
    local stored_ts = tonumber(stored['ts']) or 0
    if term < stored_term then return 'older_term' end
    if not above(ARGV[3], stored['seq']) then
      if above(stored['seq'], ARGV[3]) and tonumber(ARGV[4]) >= stored_ts + tonumber(ARGV[7]) then
        verdict = 'reset'
      else
        return 'not_newer'
      end
    end
  end
end
redis.call('SET', KEYS[2], ARGV[5])
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[6]) end
return verdict
"""
