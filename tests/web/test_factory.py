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
