"""PledgeFlask.ensure_sync: remembered for plain functions, never for anything else."""

import asyncio

from pledge_ws.web.factory import PledgeFlask


def test_plain_functions_are_remembered_and_returned_as_is():
    app = PledgeFlask(__name__)

    def view() -> str:
        return "ok"

    assert app.ensure_sync(view) is view
    assert app.ensure_sync(view) is view
    assert list(app._sync_checked) == [view]


def test_coroutine_functions_are_still_wrapped_by_flask():
    app = PledgeFlask(__name__)

    async def view() -> str:
        await asyncio.sleep(0)
        return "ok"

    try:
        wrapped = app.ensure_sync(view)
    except RuntimeError as exc:  # flask[async] (asgiref) not installed: Flask says so, as without the cache
        assert "async" in str(exc).lower()
        return
    assert wrapped is not view
    assert wrapped() == "ok"


def test_bound_methods_are_not_remembered():
    app = PledgeFlask(__name__)

    class Hooks:
        def hook(self) -> None:
            return None

    hooks = Hooks()
    for _ in range(3):
        assert app.ensure_sync(hooks.hook) == hooks.hook
    assert app._sync_checked == {}


def test_flask_run_is_told_it_serves_no_ws_and_pointed_to_pledge_ws(monkeypatch, capsys):
    """`flask --app pledge_ws.wsgi run` has no gunicorn: a warning at start, and /ws a 500 that
    names the command to use instead."""
    from pledge_ws.config import load_settings
    from pledge_ws.web.factory import create_app

    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    app = create_app(load_settings({}))
    warning = capsys.readouterr().err
    assert "WARNING" in warning and "`pledge-ws`" in warning and "no prices" in warning
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    response = app.test_client().get("/ws", headers=headers)
    assert response.status_code == 500
    assert "pledge-ws" in response.get_json()["error"] and "flask run" in response.get_json()["error"]
