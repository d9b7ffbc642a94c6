"""``python -m pledge_ws.simulator``: the same as the ``pledge-ws-simulator`` command."""

from pledge_ws.simulator.entry import console

console()
