"""gunicorn's settings for pledge-ws, shipped inside the package.

``pledge-ws`` runs gunicorn with ``-c python:pledge_ws.gunicorn_conf``; in a checkout
``gunicorn -c gunicorn.conf.py app:app`` reads the same settings (that file imports these).
The master validates the environment first, so bad configuration stops start-up with one
line naming the variable. Each worker starts its runtime after the fork, and on SIGTERM
closes every client with 1001 before it exits.
"""

import glob
import os
import shutil
import signal
import sys
import tempfile

import gevent

from pledge_ws.config import ConfigError, load_settings
from pledge_ws.logs import config_error_line, gunicorn_logconfig

try:
    _settings = load_settings(os.environ)
except ConfigError as exc:
    sys.stderr.write(config_error_line(str(exc), os.environ.get("LOG_FORMAT", "")))
    sys.exit(2)

bind = [f"0.0.0.0:{_settings.port}"]
# METRICS_PORT: a second listener that alone answers /metrics and the detailed /readyz
# (pledge_ws/web/ops.py), so the public port need not tell anyone host names, pids or the leader.
if _settings.metrics_port is not None:
    bind.append(f"0.0.0.0:{_settings.metrics_port}")
workers = _settings.web_concurrency
# A socket per worker (SO_REUSEPORT): the kernel spreads long-lived /ws connections evenly,
# instead of one shared socket where the same idle worker tends to win every accept.
reuse_port = workers > 1
worker_class = "gevent"
# Each /ws client holds one slot; leave headroom above MAX_CONNECTIONS for HTTP requests.
worker_connections = _settings.max_connections + 1000
backlog = 4096
# gunicorn's C request parser (gunicorn-h1c, pinned): a connection storm is bounded by the CPU
# of each upgrade, and the pure-Python parser was about a sixth of it (bench/README.md).
http_parser = "fast"
timeout = 30
graceful_timeout = 10
keepalive = 5
# The access log is off unless ACCESS_LOG=1 (stdout). With LOG_FORMAT=json gunicorn's own
# lines (error log, access log) are JSON objects with the service's fields (pledge_ws/logs.py).
accesslog = "-" if _settings.access_log and _settings.log_format == "text" else None
errorlog = "-"
loglevel = _settings.log_level.lower()
if _settings.log_format == "json":
    logconfig_dict = gunicorn_logconfig(_settings.log_level, _settings.access_log)
proc_name = "pledge-ws"
# One fixed control-socket path would clash between instances on a host; it is not used.
control_socket_disable = True

# Several workers: each writes its metrics to files in one directory and /metrics aggregates
# them (prometheus_client's multiprocess mode), whichever worker answers the scrape. The
# variable must be set before any worker imports prometheus_client, i.e. here in the master.
# Set by the operator (a Kubernetes emptyDir, say), it is used whatever the worker count.
_own_metrics_dir = None
if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pledge-ws-metrics-")
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    for _stale in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(_stale)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)


def child_exit(server, worker):
    """A dead worker's live gauges (connections, leader) must stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):
    """Accept in bursts with several workers too.

    gunicorn's gevent worker sets gevent's ``max_accept`` (connections accepted per wake-up of
    a listening socket, 100 by default) to 1 when ``workers > 1``, so that workers sharing one
    socket take turns. With ``reuse_port`` every worker has a socket of its own (the kernel
    spreads connections), so there is nothing to take turns for, and one accept per event
    loop iteration starves accepting behind the fan-out: measured with one worker at
    max_accept 1, 9,008 of 10,000 clients connected in 62.8 s instead of all in 14.7 s
    (bench/README.md). That check is the only use of ``cfg.workers`` inside a worker, so this
    worker's copy of the setting says 1; the master's count is untouched.
    """
    if reuse_port:
        worker.cfg.set("workers", 1)


def post_worker_init(worker):
    """Start the runtime in the worker (never at import) and hook SIGTERM for a clean drain."""
    from pledge_ws.web.factory import runtime_of

    runtime = runtime_of(worker.wsgi)
    runtime.start()

    def on_term(signum, frame):
        # Stop accepting at once (gunicorn's worker loop closes its listeners within a second
        # of alive going False, then waits up to graceful_timeout for the open connections),
        # so reconnecting clients go to the other workers instead of meeting this one's 503;
        # meanwhile the drain closes every client with 1001 and its reconnect hint.
        worker.alive = False
        gevent.spawn(runtime.shutdown, grace=min(5.0, graceful_timeout / 2))

    signal.signal(signal.SIGTERM, on_term)


# What a config file that imports this module (gunicorn.conf.py) takes over: gunicorn's
# settings and hooks, nothing private.
__all__ = [
    name
    for name in (
        "bind", "workers", "reuse_port", "worker_class", "worker_connections", "backlog", "http_parser",
        "timeout", "graceful_timeout", "keepalive", "accesslog", "errorlog", "loglevel", "logconfig_dict",
        "proc_name", "control_socket_disable", "on_exit", "child_exit", "post_fork", "post_worker_init",
    )
    if name in globals()
]  # fmt: skip
