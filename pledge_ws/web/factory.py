"""The app factory: settings in, a wired Flask app out (no I/O until the runtime starts)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from types import FunctionType
from typing import Any

from flask import Flask

from pledge_ws.config import Settings, load_settings
from pledge_ws.logs import configure_logging
from pledge_ws.web.ops import ops_blueprint, split_ports
from pledge_ws.web.prices import prices_blueprint
from pledge_ws.web.upgrade import NOT_UNDER_GUNICORN, UpgradeSock
from pledge_ws.web.ws import ws_blueprint
from pledge_ws.worker.runtime import Runtime

EXTENSION = "pledge_ws"


class PledgeFlask(Flask):
    """Flask whose ``ensure_sync`` (the documented override point) remembers its answer.

    Flask asks ``inspect.iscoroutinefunction`` for every hook and view on every request,
    four times per ``/ws`` upgrade; the answer never changes for a plain function. Only
    plain functions are remembered (hooks and views are registered once), so the cache is
    bounded by what the app registered.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_checked: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        known = self._sync_checked.get(func)
        if known is None:
            known = super().ensure_sync(func)
            if isinstance(func, FunctionType):
                self._sync_checked[func] = known
        return known


def create_app(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> Flask:
    settings = settings or load_settings(os.environ if env is None else env)
    configure_logging(settings)
    if os.environ.get("FLASK_RUN_FROM_CLI") == "true":
        # No gunicorn, so no post_worker_init hook: nothing starts the runtime, and /ws has no
        # gunicorn socket to take over. Say so once, where a Flask user looks first.
        logging.getLogger("pledge_ws").warning(NOT_UNDER_GUNICORN + "; this server has no prices")
    app = PledgeFlask("pledge_ws", static_folder="static", static_url_path="/static")
    runtime = Runtime(settings)
    app.extensions[EXTENSION] = runtime
    split_ports(app, settings.metrics_port)
    app.register_blueprint(ws_blueprint(runtime, UpgradeSock(app)))  # the upgrade seam: upgrade.py
    app.register_blueprint(prices_blueprint(runtime))
    app.register_blueprint(ops_blueprint(runtime))
    return app


def runtime_of(app: Flask) -> Runtime:
    return app.extensions[EXTENSION]
