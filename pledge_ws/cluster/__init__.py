"""The Redis side: what ties workers and hosts together (docs/ha.md).

The client (plain or Sentinel), every key and channel name (``keys``), the leader election,
the tick bus, the writer of the latest prices, and the history Streams recovery reads.
Rule: nothing here imports from ``exchange/``, ``clients/``, ``web/`` or ``worker/``.
"""
