"""One worker process: where the sides meet.

``runtime`` wires the sides together and runs the worker's lifecycle; ``holder`` is the feed
holder the elector drives (the exchange feed, the REST fallback and the Redis writer, started
and stopped as one); ``intake`` is the tick path (order guard, bad-print rule, book, hub).
Rule: only this package imports from several sides; ``web/`` reaches it, never the reverse.
"""
