"""The Python package as its users install it: a wheel that builds, and ``pip install <checkout>``
into a fresh virtualenv outside the checkout, whose two commands then run against each other.

Slow-ish (the fresh venv installs the runtime from the package index, through pip's cache), so
one venv serves the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from pledge_ws import __version__
from tests.support import ROOT, free_port, http, wait_until

pytestmark = pytest.mark.integration


def run(*args: str | Path, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def clean_env() -> dict[str, str]:
    """The environment of a user's shell: nothing that points back at this checkout or its venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PROMETHEUS_MULTIPROC_DIR")}
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    return env


@pytest.fixture(scope="module")
def venv() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pledge-ws-install-") as tmp:
        home = Path(tmp)
        run(sys.base_prefix + "/bin/python3", "-m", "venv", home / "venv", cwd=home)
        run(home / "venv/bin/pip", "install", "-q", "--disable-pip-version-check", ROOT, cwd=home, env=clean_env())
        yield home


def test_the_wheel_builds_with_the_package_and_nothing_else(tmp_path):
    run(Path(sys.executable).with_name("pip"), "wheel", "-q", "--no-deps", "-w", tmp_path, ROOT, cwd=tmp_path)
    (wheel,) = tmp_path.glob("pledge_ws-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for wanted in ("pledge_ws/gunicorn_conf.py", "pledge_ws/wsgi.py", "pledge_ws/static/index.html"):
        assert wanted in names, wanted
    static = zipfile.ZipFile(wheel).read("pledge_ws/static/pledge-ws.js")
    assert static == (ROOT / "clients/js/src/pledge-ws.js").read_bytes()  # the npm package's file
    assert not [n for n in names if n.startswith(("tests/", "bench/", "clients/"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pledge-ws = pledge_ws.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_commands_serve_prices_from_the_simulator_outside_the_checkout(venv):
    bin_dir, env = venv / "venv" / "bin", clean_env()
    where = run(bin_dir / "python", "-c", "import pledge_ws; print(pledge_ws.__file__)", cwd=venv, env=env)
    assert str(venv) in where and str(ROOT) not in where  # the installed copy, not the checkout
    assert run(bin_dir / "pledge-ws", "--version", cwd=venv, env=env).strip() == f"pledge-ws {__version__}"
    assert "REST_FALLBACK_INTERVAL" in run(bin_dir / "pledge-ws", "--help", cwd=venv, env=env)
    sim_port, port = free_port(), free_port()
    logs = [open(venv / name, "wb") for name in ("simulator.log", "service.log")]  # noqa: SIM115
    sim = subprocess.Popen(
        [bin_dir / "pledge-ws-simulator", "--port", str(sim_port), "--rate", "5"], cwd=venv, env=env, stdout=logs[0]
    )
    service_env = {**env, "KUCOIN_API_URL": f"http://127.0.0.1:{sim_port}", "PORT": str(port), "LOG_FORMAT": "json"}
    service = subprocess.Popen([bin_dir / "pledge-ws"], cwd=venv, env=service_env, stdout=logs[1], stderr=logs[1])
    try:
        url = f"http://127.0.0.1:{port}"
        body = wait_until(lambda: http("GET", url + "/price")[1].get("price"), 30, interval=0.2, what="a price")
        assert body and http("GET", url + "/price")[1]["symbol"] == "PLGR-USDT"
        client = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5)
        assert '"code":0' in client.recv()  # the snapshot price, over the installed /ws
        client.close()
        assert http("GET", url + "/readyz")[0] == 200
        status, page = http("GET", url + "/static/pledge-ws.js")
        assert status == 200 and "export class PledgeWS" in page
    finally:
        for proc in (service, sim):
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(20) for proc in (service, sim)]
        for log in logs:
            log.close()
    assert codes == [0, 0], (codes, (venv / "service.log").read_text()[-3000:])
