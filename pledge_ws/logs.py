"""Logging set-up: plain text for people, or one JSON object per line for collectors.

Log calls pass ``extra={"event": ...}`` for state changes; the JSON formatter keeps those
fields, so "feed_connected" or "client_evicted" can be counted without parsing prose.

With ``LOG_FORMAT=json`` every line the process writes has the same fields (``time``, ``level``,
``logger``, ``message``, ``pid``, then ``event`` and the extras where there are any): the
service's own lines, gunicorn's error log (``gunicorn_logconfig`` below, loaded by
gunicorn.conf.py as ``logconfig_dict``), its access log when ``ACCESS_LOG=1``, Python warnings
and tracebacks of greenlets that died (gevent prints those to stderr itself otherwise).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from pledge_ws.config import Settings

# Attributes every LogRecord has; anything else came from ``extra``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def _iso(created: float, msecs: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid, extras, exc."""

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        body: dict[str, object] = {
            "time": _iso(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in body:
                body[key] = value
        return body

    def format(self, record: logging.LogRecord) -> str:
        body = self.fields(record)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exc"] = record.exc_text
        return json.dumps(body, default=str)


# gunicorn's access-log atoms (gunicorn/glogging.py ``Logger.atoms``) kept in a JSON line.
_ACCESS_ATOMS = {"remote": "h", "method": "m", "path": "U", "query": "q", "status": "s", "bytes": "B", "ua": "a"}


class JsonAccessFormatter(JsonFormatter):
    """gunicorn's access log: the request as fields instead of an Apache-style line."""

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        atoms: Any = record.args if isinstance(record.args, Mapping) else {}
        request = {name: atoms.get(atom) for name, atom in _ACCESS_ATOMS.items()}
        body = super().fields(record)
        body["message"] = f"{request['method']} {request['path']} {request['status']}"
        body.update({"event": "http_request", **request, "duration_ms": atoms.get("M")})
        return body


def gunicorn_logconfig(log_level: str, access_log: bool) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict`` for JSON: its error log (stderr) and access log (stdout).

    Any ``logconfig_dict`` makes gunicorn build its access-log fields for every request, so
    with the access log off its logger still exists but has no handler and passes nothing.
    """
    stream = "ext://sys.stderr"
    handlers: dict[str, Any] = {
        "json_stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": stream},
        "json_access": {"class": "logging.StreamHandler", "formatter": "json_access", "stream": "ext://sys.stdout"},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "pledge_ws.logs.JsonFormatter"},
            "json_access": {"()": "pledge_ws.logs.JsonAccessFormatter"},
        },
        "handlers": handlers,
        "root": {"level": log_level, "handlers": ["json_stderr"]},
        "loggers": {
            "gunicorn.error": {"level": log_level, "handlers": ["json_stderr"], "propagate": False},
            "gunicorn.access": {
                "level": "INFO" if access_log else "CRITICAL",
                "handlers": ["json_access"] if access_log else [],
                "propagate": False,
            },
        },
    }


def _log_greenlet_error(context: object, t: type | None, v: BaseException | None, tb: object) -> None:
    """gevent's hub writes a dead greenlet's traceback to stderr as text; log it instead."""
    logging.getLogger("pledge_ws.greenlet").error(
        "%s failed with %s",
        context,
        getattr(t, "__name__", "exception"),
        exc_info=(t, v, tb) if t is not None and v is not None else None,
        extra={"event": "greenlet_failed"},
    )


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
        logging.captureWarnings(True)
        if "gevent" in sys.modules:
            import gevent

            # An instance attribute, not a patch of gevent's class: only this hub changes.
            gevent.get_hub().print_exception = _log_greenlet_error
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger("pledge_ws")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    root.propagate = False


def config_error_line(message: str, log_format: str) -> str:
    """The one line a bad configuration stops start-up with, in the format asked for."""
    if log_format.strip().lower() != "json":
        return f"pledge-ws: configuration error: {message}\n"
    now = time.time()
    body = {
        "time": _iso(now, (now % 1) * 1000),
        "level": "critical",
        "logger": "pledge_ws.config",
        "message": f"configuration error: {message}",
        "pid": os.getpid(),
        "event": "config_error",
    }
    return json.dumps(body) + "\n"
