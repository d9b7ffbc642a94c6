"""METRICS_PORT: a second listener alone answers /metrics and the detailed /readyz; the public
port keeps /healthz and a bare readiness status. Unset, everything stays on PORT as before."""

import pytest
import websocket

from pledge_ws.config import ConfigError, load_settings
from pledge_ws.web.ops import on_metrics_port
from tests.support import Client, free_port, http


def test_on_metrics_port_compares_the_listening_port():
    assert on_metrics_port("9101", 9101) and not on_metrics_port("8000", 9101)
    assert not on_metrics_port("9101", None) and not on_metrics_port(None, 9101)


def test_metrics_port_is_validated():
    assert load_settings({}).metrics_port is None
    assert load_settings({"METRICS_PORT": "9101"}).metrics_port == 9101
    for bad in ("abc", "0", "70000", "8000"):
        with pytest.raises(ConfigError, match="METRICS_PORT"):
            load_settings({"METRICS_PORT": bad})


def test_public_port_hides_details_metrics_port_has_them(service_factory, simulator, redis):
    metrics_port = free_port()
    svc = service_factory(KUCOIN_API_URL=simulator.url, REDIS_URL=redis.url, METRICS_PORT=str(metrics_port))
    svc.wait_ready()
    admin = f"http://127.0.0.1:{metrics_port}"
    assert svc.get("/metrics")[0] == 404
    assert svc.get("/readyz") == (200, {"ready": True})
    assert svc.get("/healthz")[0] == 200
    simulator.set_price("PLGR-USDT", "0.005500")
    client = Client(svc.ws_url)  # the public port still serves /ws and /price
    assert client.wait_price("0.005500")["data"] == "0.005500"
    assert svc.get("/price")[1]["price"] == "0.005500"

    status, text = http("GET", f"{admin}/metrics")
    assert status == 200 and "pledge_ws_connections 1.0" in text
    status, body = http("GET", f"{admin}/readyz")
    assert status == 200 and body["ready"] is True and body["pid"] > 0 and body["leader"]
    assert http("GET", f"{admin}/healthz")[0] == 200
    assert http("GET", f"{admin}/price")[0] == 404
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{metrics_port}/ws", timeout=3)
    assert refused.value.status_code == 404
    client.close()


def test_unset_everything_on_the_public_port(service):
    assert service.get("/metrics")[0] == 200
    status, body = service.get("/readyz")
    assert status == 200 and {"ready", "pid", "leader", "role"} <= body.keys()
