"""The browser side: one non-blocking writer per socket, the fan-out hub, the session loop,
and recovery's I/O (``replay``).

Rule: nothing here imports from ``exchange/``, ``cluster/``, ``web/`` or ``worker/``: what the
browsers get is decided from ``core/`` values (ticks, frames, recovery plans) handed in.
"""
