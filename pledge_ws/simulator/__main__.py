"""Entry point: monkey-patch first, before socket, ssl and threading are imported."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from pledge_ws.simulator.cli import main  # noqa: E402

sys.exit(main())
