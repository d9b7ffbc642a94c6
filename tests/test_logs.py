"""LOG_FORMAT=json: every line the process writes is one JSON object with the same fields,
gunicorn's own lines (start, workers, shutdown, the access log when on) included."""

import json
import logging

from pledge_ws.logs import JsonAccessFormatter, JsonFormatter, config_error_line, gunicorn_logconfig
from tests.support import Client, wait_until

FIELDS = {"time", "level", "logger", "message", "pid"}


def _records(log: str) -> list[dict]:
    records = []
    for number, line in enumerate(log.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict) and record.keys() >= FIELDS, line
        records.append(record)
    return records


def test_formatter_fields_and_extras():
    record = logging.LogRecord("pledge_ws.exchange.feed", logging.WARNING, "f.py", 1, "lost %s", ("feed",), None)
    record.event, record.delay = "feed_reconnecting", 1.5
    body = json.loads(JsonFormatter().format(record))
    assert body["message"] == "lost feed" and body["level"] == "warning" and body["logger"] == "pledge_ws.exchange.feed"
    assert body["event"] == "feed_reconnecting" and body["delay"] == 1.5 and isinstance(body["pid"], int)
    assert body["time"].endswith("Z") and "T" in body["time"]


def test_access_formatter_keeps_the_request_as_fields():
    atoms = {"h": "10.0.0.1", "m": "GET", "U": "/price", "q": "symbol=X", "s": "200", "B": 99, "a": "curl", "M": 3}
    atoms["r"] = "GET /price?symbol=X HTTP/1.1"
    record = logging.LogRecord("gunicorn.access", logging.INFO, "g.py", 1, '%(h)s "%(r)s"', (atoms,), None)
    body = json.loads(JsonAccessFormatter().format(record))
    assert body["event"] == "http_request" and body["message"] == "GET /price 200"
    assert (body["path"], body["status"], body["duration_ms"], body["remote"]) == ("/price", "200", 3, "10.0.0.1")


def test_logconfig_has_no_access_handler_unless_asked():
    assert gunicorn_logconfig("INFO", access_log=False)["loggers"]["gunicorn.access"]["handlers"] == []
    assert gunicorn_logconfig("INFO", access_log=True)["loggers"]["gunicorn.access"]["handlers"] == ["json_access"]


def test_config_error_line_is_json_when_asked():
    assert config_error_line("PORT: bad", "text") == "pledge-ws: configuration error: PORT: bad\n"
    body = json.loads(config_error_line("PORT: bad", "json"))
    assert body.keys() >= FIELDS and body["event"] == "config_error" and "PORT: bad" in body["message"]


def test_every_line_is_json_from_start_to_shutdown(service_factory, simulator, redis):
    svc = service_factory(KUCOIN_API_URL=simulator.url, REDIS_URL=redis.url, LOG_FORMAT="json", WEB_CONCURRENCY="2")
    svc.wait_ready()
    simulator.set_price("PLGR-USDT", "0.004200")
    client = Client(svc.ws_url)
    client.wait_price("0.004200")
    client.close()
    assert svc.get("/price")[0] == 200
    assert svc.stop() == 0
    records = _records(svc.process.log())
    messages = [r["message"] for r in records if r["logger"] == "gunicorn.error"]
    for expected in ("Starting gunicorn", "Booting worker", "Handling signal: term", "Worker exiting", "Shutting down"):
        assert any(m.startswith(expected) for m in messages), (expected, messages)
    assert len({r["pid"] for r in records}) == 3  # the master and two workers
    assert {"worker_started", "shutdown"} <= {r.get("event") for r in records}
    assert not any(r.get("event") == "http_request" for r in records)  # the access log is off by default


def test_access_log_when_on_is_json_too(service_factory, simulator):
    svc = service_factory(KUCOIN_API_URL=simulator.url, LOG_FORMAT="json", ACCESS_LOG="1")
    assert svc.get("/price?symbol=PLGR-USDT")[0] in (200, 503)
    wait_until(lambda: "http_request" in svc.process.log(), 5, what="an access-log line")
    svc.stop()
    access = [r for r in _records(svc.process.log()) if r.get("event") == "http_request"]
    assert any(r["path"] == "/price" and r["query"] == "symbol=PLGR-USDT" for r in access), access
