"""The exchange side: KuCoin's protocol, the WebSocket feed, the REST fallback.

Rule: nothing here imports from ``clients/``, ``cluster/``, ``web/`` or ``worker/``; ticks leave
through the ``on_tick`` callback the worker hands in. ``kucoin``, ``reconnect`` and
``rest_schedule`` are pure (a decision core, like ``core/``); ``feed`` and ``rest_poller`` are
the thin I/O loops that do what they decide.
"""
