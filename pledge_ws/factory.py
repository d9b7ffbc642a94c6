"""The app factory: settings in, a wired Flask app out (no I/O until the runtime starts)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask

from pledge_ws.config import Settings, load_settings
from pledge_ws.logs import configure_logging
from pledge_ws.runtime import Runtime
from pledge_ws.upgrade import UpgradeSock
from pledge_ws.views import register_views

EXTENSION = "pledge_ws"


def create_app(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> Flask:
    settings = settings or load_settings(os.environ if env is None else env)
    configure_logging(settings)
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    runtime = Runtime(settings)
    app.extensions[EXTENSION] = runtime
    sock = UpgradeSock(app)  # the upgrade seam: pledge_ws/upgrade.py
    register_views(app, sock, runtime)
    return app


def runtime_of(app: Flask) -> Runtime:
    return app.extensions[EXTENSION]
