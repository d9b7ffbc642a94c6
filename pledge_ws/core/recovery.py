"""Recovery after a reconnect (docs/protocol.md, "Recovery"), without I/O.

A client names the last ``seq`` it got per symbol (``since=A:SEQ,B:SEQ``); the server answers
each with a code 2 status frame and either exactly the prices it missed or the snapshot.

When a position is recoverable: every kept history entry records ``prev``, the sequence of
the tick its publisher had accepted just before it (None when the publisher could not know,
e.g. its first tick after a gap). A position SEQ is recoverable from a run of entries
``e1..en`` (all those kept above SEQ, oldest first) only if the chain is unbroken from SEQ:
``e1.prev == SEQ`` (or SEQ itself is kept, anchoring the run) and ``ei.prev == e(i-1).seq``
for every later entry. So a trimmed window, a tick the writer dropped, a Redis that lost its
last writes in a failover, or a worker that missed bus messages all answer "not recovered"
rather than a replay with a silent hole. SEQ newer than anything kept is "not recovered" too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pledge_ws.core.book import Entry
from pledge_ws.core.protocol import MAX_SYMBOLS_PER_REQUEST, not_recovered_payload, recovered_payload, text_frame

SINCE_ITEM_RE = re.compile(r"^([A-Za-z0-9]{1,20}-[A-Za-z0-9]{1,20}):([0-9]{1,30})$")


@dataclass(frozen=True, slots=True)
class Recovered:
    entries: tuple[Entry, ...]  # the missed ticks, oldest first (maybe none)
    floor: int  # the newest sequence the client holds once they are sent


@dataclass(frozen=True, slots=True)
class NotRecovered:
    reason: str  # "unknown" (nothing kept at or above SEQ), "gap" (the chain breaks), "too_many"


Decision = Recovered | NotRecovered


@dataclass(frozen=True, slots=True)
class Recovery:
    """What the hub sends a recovering client before its live prices.

    ``frames``: per symbol of ``since``, its status frame, then its missed prices (a symbol
    not recovered gets its snapshot from the ordinary subscribe, after its status frame).
    ``floors``: per recovered symbol, the newest sequence the replay holds.
    """

    frames: list[bytes]
    floors: dict[str, int]
    decisions: dict[str, Decision]


def parse_since(raw: str, symbols: Collection[str]) -> dict[str, int] | str:
    """``A:SEQ,B:SEQ`` as {symbol: seq}, or an error message naming the problem.

    Every symbol must be one of the connection's ``symbols`` (already normalized, upper case).
    """
    items = [part.strip() for part in raw.split(",")]
    if not raw.strip() or any(not part for part in items):
        return "since must be SYMBOL:SEQ[,SYMBOL:SEQ...]"
    if len(items) > MAX_SYMBOLS_PER_REQUEST:
        return f"since names at most {MAX_SYMBOLS_PER_REQUEST} symbols"
    since: dict[str, int] = {}
    for item in items:
        match = SINCE_ITEM_RE.match(item)
        if match is None:
            return f"since: malformed item {item[:60]!r}, expected SYMBOL:SEQ (SEQ decimal digits)"
        symbol = match.group(1).upper()
        if symbol not in symbols:
            return f"since: symbol {symbol} is not in symbols"
        if symbol in since:
            return f"since: symbol {symbol} given twice"
        since[symbol] = int(match.group(2))
    return since


def decide(since: int, kept: Sequence[Entry], limit: int) -> Decision:
    """Whether ``kept`` (entries with order >= ``since``, oldest first) proves the gap is closed."""
    if not kept:
        return NotRecovered("unknown")
    start, last = 0, since
    if kept[0].order == since:
        start = 1  # SEQ itself is kept: the run is anchored there
    for entry in kept[start:]:
        if entry.prev != last or entry.order <= last:
            return NotRecovered("gap")
        last = entry.order
    missed = tuple(kept[start:])
    if len(missed) > limit:
        return NotRecovered("too_many")
    return Recovered(missed, last)


def merge(remote: Sequence[Entry], local: Sequence[Entry]) -> list[Entry]:
    """The shared history read from Redis, continued by this worker's newer entries.

    Redis may lag this worker (the feed holder hands its ticks to its clients before they are
    written) or lead it (bus messages in flight): the seam is checked by :func:`decide` like
    any other link of the chain.
    """
    if not remote:
        return list(local)
    newest = remote[-1].order
    return [*remote, *(entry for entry in local if entry.order > newest)]


def plan(since: dict[str, int], kept: dict[str, Sequence[Entry]], limit: int) -> Recovery:
    """Decide every symbol of ``since`` from its ``kept`` entries and lay out the frames."""
    return layout({symbol: decide(seq, kept.get(symbol, ()), limit) for symbol, seq in since.items()})


def layout(decisions: dict[str, Decision]) -> Recovery:
    """The frames and floors for ``decisions`` (in ``since`` order)."""
    frames: list[bytes] = []
    floors: dict[str, int] = {}
    for symbol, decision in decisions.items():
        if isinstance(decision, Recovered):
            frames.append(text_frame(recovered_payload(symbol, len(decision.entries))))
            frames.extend(entry.frame for entry in decision.entries)
            floors[symbol] = decision.floor
        else:
            frames.append(text_frame(not_recovered_payload(symbol)))
    return Recovery(frames, floors, decisions)
