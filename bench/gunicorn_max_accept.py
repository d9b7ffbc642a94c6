"""Bench only: the service's gunicorn.conf.py, with gevent's accepts per wake-up of the
listening socket set to ``BENCH_MAX_ACCEPT`` (``gevent.server.StreamServer.max_accept``: 100 by
default; gunicorn's gevent worker would set it to 1 on each server when ``workers > 1``, which
gunicorn.conf.py's post_fork prevents with ``reuse_port``). ``bench/run.py --max-accept N``
uses it for one-worker runs."""

import os
from pathlib import Path

_conf = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
exec(compile(_conf.read_text(), str(_conf), "exec"))  # the service's own config file


_service_post_fork = post_fork  # noqa: F821 - defined by the exec above


def post_fork(server, worker):
    import gevent.server

    _service_post_fork(server, worker)
    gevent.server.StreamServer.max_accept = int(os.environ["BENCH_MAX_ACCEPT"])
    worker.log.info("bench: gevent max_accept = %d", gevent.server.StreamServer.max_accept)
