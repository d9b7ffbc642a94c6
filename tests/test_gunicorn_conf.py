"""gunicorn.conf.py's post_fork: accepting in bursts survives WEB_CONCURRENCY > 1 (bench/README)."""

import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def _load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: int) -> dict:
    monkeypatch.setenv("WEB_CONCURRENCY", str(workers))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")  # required with workers > 1; never dialled here
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # restored after the test
    monkeypatch.delitem(sys.modules, "pledge_ws.gunicorn_conf", raising=False)  # read the env again
    return runpy.run_path(str(CONF))


def _worker(workers: int) -> SimpleNamespace:
    cfg = Config()
    cfg.set("workers", workers)
    return SimpleNamespace(cfg=cfg)


@pytest.mark.parametrize(("workers", "reuse_port", "after"), [(2, True, 1), (1, False, 3)])
def test_post_fork_unties_accept_bursts_from_the_worker_count_only_with_reuse_port(
    monkeypatch, tmp_path, workers, reuse_port, after
):
    conf = _load(monkeypatch, tmp_path, workers=workers)
    assert conf["reuse_port"] is reuse_port
    worker = _worker(3)  # a count post_fork must either lower to 1 or leave exactly as it is
    conf["post_fork"](None, worker)
    # gunicorn's gevent worker sets max_accept = 1 on each server exactly when cfg.workers > 1
    assert worker.cfg.workers == after


def test_gunicorn_still_ties_max_accept_to_cfg_workers():
    """The rule post_fork relies on, read from the pinned gunicorn (requirements.txt)."""
    import inspect

    from gunicorn.workers import ggevent

    source = inspect.getsource(ggevent.GeventWorker.run)
    assert "if self.cfg.workers > 1:" in source and "server.max_accept = 1" in source
