"""``pledge-ws``: serve the service, exactly as ``gunicorn -c gunicorn.conf.py app:app`` does in
a checkout: gunicorn with its gevent worker, the packaged settings (gunicorn_conf.py), the same
environment variables. Installed with the package (``pip install .``), it needs no checkout.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

from pledge_ws import __version__
from pledge_ws.config import ConfigError, Settings, load_settings
from pledge_ws.logs import config_error_line

GUNICORN_ARGV = ["-c", "python:pledge_ws.gunicorn_conf", "pledge_ws.wsgi:app"]


def variables() -> list[str]:
    """The environment variables the service reads: one per setting."""
    return [field.name.upper() for field in dataclasses.fields(Settings)]


def parser() -> argparse.ArgumentParser:
    defaults = Settings()
    lines = [f"  {field.name.upper():<24} {getattr(defaults, field.name)!r}" for field in dataclasses.fields(Settings)]
    return argparse.ArgumentParser(
        prog="pledge-ws",
        description=(
            "Live exchange prices pushed to browsers over WebSocket (/ws), with GET /price. Serves with "
            "gunicorn's gevent worker. Configuration comes from environment variables only."
        ),
        epilog="variables (default):\n" + "\n".join(lines) + "\n\nSee docs/operations.md for each one.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def healthcheck(port: int, timeout: float = 2.0) -> int:
    """What a container runtime's probe runs: one GET /healthz on loopback (no curl needed)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``--help``/``--version``, check the configuration, then hand over to gunicorn."""
    args = parser()
    args.add_argument("--version", action="version", version=f"pledge-ws {__version__}")
    args.add_argument(
        "--check-config", action="store_true", help="validate the environment, print the settings and exit"
    )
    args.add_argument(
        "--healthcheck",
        action="store_true",
        help="exit 0 if the server on this host's PORT answers GET /healthz, else 1 (container probes)",
    )
    options = args.parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        sys.stderr.write(config_error_line(str(exc), os.environ.get("LOG_FORMAT", "")))
        return 2
    if options.healthcheck:
        return healthcheck(settings.port)
    if options.check_config:
        for name, value in dataclasses.asdict(settings).items():
            shown = "***" if name == "redis_url" and value else value
            print(f"{name.upper()}={shown}")
        return 0
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = ["pledge-ws", *GUNICORN_ARGV]
    WSGIApplication("%(prog)s (pledge-ws, configured from the environment)").run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
