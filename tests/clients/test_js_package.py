"""The browser client as its users install it: the npm package ``pledge-ws-client`` (clients/js).

Its own tests run with Node's test runner against a real pledge-ws and the simulator, its type
declarations are checked with ``tsc``, and ``npm pack``'s tarball installs into an empty project
where ``import { PledgeWS } from "pledge-ws-client"`` with ``ws`` injected receives a price.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGE = ROOT / "clients" / "js"
NPM = shutil.which("npm")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(NPM is None, reason="npm not installed (make test installs Node and npm)"),
]


def npm(*args: str, cwd: Path = PACKAGE, timeout: float = 300, **env: str) -> str:
    done = subprocess.run(
        [str(NPM), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**_env(), **env}, check=False
    )
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _env() -> dict[str, str]:

    return {
        **os.environ,
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
    }


@pytest.fixture(scope="module")
def installed() -> Path:
    npm("ci", "--no-audit", "--no-fund")
    return PACKAGE


def test_node_tests_of_the_client_against_a_real_server(installed):
    out = npm("test", PLEDGE_WS_PYTHON=sys.executable, timeout=240)
    assert "# fail 0" in out and "# pass " in out, out[-2000:]


def test_the_type_declarations_cover_a_typical_use(installed):
    npm("run", "typecheck")


def test_the_packed_tarball_installs_into_an_empty_project_and_receives_a_price(
    installed, tmp_path, service, simulator
):
    packed = json.loads(npm("pack", "--json", "--pack-destination", str(tmp_path)))
    files = {f["path"] for f in packed[0]["files"]}
    assert files == {"package.json", "README.md", "src/pledge-ws.js", "src/pledge-ws.d.ts"}, files
    tarball = tmp_path / packed[0]["filename"]
    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({"name": "app", "private": True, "type": "module"}))
    ws_version = json.loads((PACKAGE / "package.json").read_text())["devDependencies"]["ws"]
    npm("install", "--no-audit", "--no-fund", str(tarball), f"ws@{ws_version}", cwd=project)
    price = simulator.set_price("PLGR-USDT", "0.004321")
    (project / "main.js").write_text(
        """
import WebSocket from "ws";
import { PledgeWS } from "pledge-ws-client";
import Default from "pledge-ws-client";
if (Default !== PledgeWS) throw new Error("the default export is not PledgeWS");
const client = new PledgeWS({ url: process.argv[2], symbols: ["PLGR-USDT"], WebSocket });
const timer = setTimeout(() => { console.error("no price"); process.exit(1); }, 10000);
client.on("price", (tick) => {
  console.log(JSON.stringify(tick));
  clearTimeout(timer);
  client.close();
});
"""
    )
    node = shutil.which("node")
    done = subprocess.run(
        [str(node), "main.js", service.ws_url], cwd=project, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    tick = json.loads(done.stdout.strip().splitlines()[-1])
    assert tick == {"symbol": "PLGR-USDT", "price": "0.004321", "seq": price["sequence"], "ts": price["time"]}
