"""The ``pledge-ws-simulator`` console script and ``python -m pledge_ws.simulator``: gevent's
monkey patching comes first, before anything imports socket, ssl or threading."""

from __future__ import annotations

import sys


def console() -> None:
    from gevent import monkey

    monkey.patch_all()
    from pledge_ws.simulator.cli import main

    sys.exit(main())
