"""Logging set-up: plain text for people, or one JSON object per line for collectors.

Log calls pass ``extra={"event": ...}`` for state changes; the JSON formatter keeps those
fields, so "feed_connected" or "client_evicted" can be counted without parsing prose.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from pledge_ws.config import Settings

# Attributes every LogRecord has; anything else came from ``extra``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
    root = logging.getLogger("pledge_ws")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    root.propagate = False
