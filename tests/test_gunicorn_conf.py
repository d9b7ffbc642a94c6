"""gunicorn.conf.py's post_fork: accepting in bursts survives WEB_CONCURRENCY > 1 (bench/README)."""

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def _load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: int) -> dict:
    monkeypatch.setenv("WEB_CONCURRENCY", str(workers))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")  # required with workers > 1; never dialled here
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # restored after the test
    return runpy.run_path(str(CONF))


def _worker(workers: int) -> SimpleNamespace:
    cfg = Config()
    cfg.set("workers", workers)
    return SimpleNamespace(cfg=cfg)


def test_with_a_socket_per_worker_the_worker_keeps_gevents_accept_bursts(monkeypatch, tmp_path):
    conf = _load(monkeypatch, tmp_path, workers=2)
    assert conf["reuse_port"] is True
    worker = _worker(2)
    conf["post_fork"](None, worker)
    # gunicorn's gevent worker sets max_accept = 1 on each server exactly when cfg.workers > 1
    assert worker.cfg.workers == 1


def test_one_worker_is_left_alone(monkeypatch, tmp_path):
    conf = _load(monkeypatch, tmp_path, workers=1)
    assert conf["reuse_port"] is False
    worker = _worker(1)
    conf["post_fork"](None, worker)
    assert worker.cfg.workers == 1


def test_gunicorn_still_ties_max_accept_to_cfg_workers():
    """The rule post_fork relies on, read from the pinned gunicorn (requirements.txt)."""
    import inspect

    from gunicorn.workers import ggevent

    source = inspect.getsource(ggevent.GeventWorker.run)
    assert "if self.cfg.workers > 1:" in source and "server.max_accept = 1" in source
