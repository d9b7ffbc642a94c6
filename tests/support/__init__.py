"""Real processes for integration tests: redis-server, the simulator, gunicorn, clients.

Every process is started on a free loopback port and killed by PID; every wait is bounded.
One job per module: ``basics`` (paths, ports, waits, HTTP), ``upgrade`` (the raw handshake),
``processes`` (the servers), ``client`` (the WebSocket client). Tests import from here.
"""

from tests.support.basics import ARTIFACTS, BIN, ROOT, free_port, http, wait_until
from tests.support.client import Client, refused
from tests.support.processes import Instances, Process, RedisServer, Service, Simulator
from tests.support.upgrade import raw_upgrade, read_close_code, upgrade_headers, upgrade_status

__all__ = [
    "ARTIFACTS",
    "BIN",
    "ROOT",
    "Client",
    "Instances",
    "Process",
    "RedisServer",
    "Service",
    "Simulator",
    "free_port",
    "http",
    "raw_upgrade",
    "read_close_code",
    "refused",
    "upgrade_headers",
    "upgrade_status",
    "wait_until",
]
