"""The pure core: every rule of the service, with no I/O.

Rule: modules here import only the standard library (no sockets, no gevent, redis, websocket
or flask) and each other. They take plain values and a ``now`` and return decisions, so each
rule is tested with literal inputs (tests/core/). The I/O around them lives in the other
sides: ``exchange/`` (KuCoin), ``cluster/`` (Redis), ``clients/`` (browsers), ``web/`` (HTTP).
"""
