"""The campaign's outputs: ``report.json`` (what was done and what held) and ``timeline.png``
(price staleness per client group over time, the faults marked), for people to look at."""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Any

from .checker import PRICE, Connection
from .schedule import Fault

GROUP_COLORS = {"steady": "#2563eb", "reconnecting": "#16a34a", "slow": "#d97706"}


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")


def staleness(connections: list[Connection], kind: str, end_s: float, step: float = 1.0) -> tuple[list, list]:
    """Per second: the worst wait since the last price among the group's connected clients."""
    spans = []
    for conn in connections:
        if conn.kind != kind:
            continue
        prices = [f[0] for f in conn.frames if f[1] == PRICE]
        spans.append((conn.opened_at, conn.closed_at if conn.closed_at is not None else end_s, prices))
    xs, ys = [], []
    t = 0.0
    while t <= end_s:
        worst = None
        for opened, closed, prices in spans:
            if not opened <= t <= closed:
                continue
            i = bisect.bisect_right(prices, t)
            last = prices[i - 1] if i else opened
            worst = max(worst or 0.0, t - last)
        xs.append(t)
        ys.append(worst if worst is not None else float("nan"))
        t += step
    return xs, ys


def draw_timeline(path: Path, connections: list[Connection], faults: list[Fault], end_s: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(14, 5.5), dpi=110)
    top = 1.0
    for kind, color in GROUP_COLORS.items():
        xs, ys = staleness(connections, kind, end_s)
        if any(y == y for y in ys):
            ax.plot(xs, ys, color=color, linewidth=1.1, label=f"{kind} clients: worst wait for a price")
            top = max([top, *[y for y in ys if y == y]])
    for n, fault in enumerate(faults):
        ax.axvspan(fault.at_s, fault.window_end_s, color="#ef4444", alpha=0.10, linewidth=0)
        ax.text(fault.at_s, top * (0.98 - 0.07 * (n % 6)), fault.kind, fontsize=6.5, color="#991b1b", rotation=0)
    ax.set_xlabel("seconds into the campaign")
    ax.set_ylabel("seconds since the last price (worst client)")
    ax.set_title(title)
    ax.set_xlim(0, end_s)
    ax.set_ylim(0, top * 1.05)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def kinds_table(result: dict[str, Any]) -> str:
    """Markdown: per fault kind, how often drawn, the longest price gap clients saw in its
    windows, the longest time from its end to one exchange link again."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for fault in result["faults"]:
        rows.setdefault(fault["kind"], []).append(fault)
    lines = [
        "| fault | drawn | longest price gap (s) | longest time to one exchange link (s) |",
        "|---|---|---|---|",
    ]
    for kind in sorted(rows):
        faults = rows[kind]
        gap = max(f["longest_price_gap_s"] for f in faults)
        links = [f["time_to_one_exchange_link_s"] for f in faults if f["time_to_one_exchange_link_s"] is not None]
        link = f"{max(links):.1f}" if links else "n/a"
        lines.append(f"| `{kind}` | {len(faults)} | {gap:.1f} | {link} |")
    return "\n".join(lines)
