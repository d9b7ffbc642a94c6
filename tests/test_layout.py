"""The layout's rules, each stated in its folder's ``__init__`` docstring, checked on the source.

Every import (at the top or inside a function) is read with ``ast``; a rule names what a
folder may not import. The layering this pins: ``core/`` at the bottom and pure; the sides
(``exchange/``, ``cluster/``, ``clients/``) beside each other, none importing another; ``worker/``
wiring them; ``web/`` on top; the simulator on its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGE = ROOT / "pledge_ws"
IO_LIBS = {
    "gevent",
    "redis",
    "websocket",
    "flask",
    "flask_sock",
    "simple_websocket",
    "socket",
    "wsproto",
    "prometheus_client",
}
IO_MODULES = {"urllib.request", "subprocess", "select", "selectors", "asyncio", "threading"}
SIDES = ("core", "exchange", "cluster", "clients", "web", "worker", "simulator")
# What each folder (or top-level module) must not import from pledge_ws.
FORBIDDEN = {
    "core": {"exchange", "cluster", "clients", "web", "worker", "simulator", "config", "metrics", "logs"},
    "exchange": {"cluster", "clients", "web", "worker", "simulator"},
    "cluster": {"exchange", "clients", "web", "worker", "simulator"},
    "clients": {"exchange", "cluster", "web", "worker", "simulator"},
    "worker": {"web", "simulator"},
    "web": {"exchange", "cluster", "simulator"},
    "simulator": {"core", "exchange", "cluster", "clients", "web", "worker", "config", "metrics", "logs"},
    "config": {"exchange", "cluster", "clients", "web", "worker", "simulator", "metrics", "logs"},
    "metrics": {"exchange", "cluster", "clients", "web", "worker", "simulator", "config", "logs"},
    "logs": {"exchange", "cluster", "clients", "web", "worker", "simulator", "metrics"},
}
# Pure modules outside core/: decision cores beside their I/O loops.
PURE = [
    "config",
    "exchange/kucoin",
    "exchange/reconnect",
    "exchange/rest_schedule",
    "clients/slots",
    "simulator/model",
    "simulator/faults",
    "simulator/exchange",
    "simulator/malformed",
    "simulator/bullets",
    "simulator/client_messages",
]
MAX_LINES = 300


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "pledge_ws":
                found.update(f"pledge_ws.{alias.name}" for alias in node.names)
    return found


def side_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_folder_imports_only_what_its_rule_allows(path):
    forbidden = FORBIDDEN.get(side_of(path), set())
    ours = {name.split(".")[1] for name in imports(path) if name.startswith("pledge_ws.")}
    assert not ours & forbidden, f"{path.relative_to(ROOT)} imports {sorted(ours & forbidden)}"


def pure_modules() -> list[Path]:
    return [p for p in modules() if side_of(p) == "core"] + [PACKAGE / f"{name}.py" for name in PURE]


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_modules_import_no_io(path):
    bad = {name for name in imports(path) if name.split(".")[0] in IO_LIBS or name in IO_MODULES}
    assert not bad, f"{path.relative_to(ROOT)} imports I/O libraries: {sorted(bad)}"


def test_no_module_is_over_300_lines():
    """The service's modules, and the tests' and benchmarks' too: a helper grows as fast."""
    files = [*modules(), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    files = [p for p in files if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by job: {long}"


def test_every_folder_states_its_rule():
    for side in SIDES:
        doc = ast.get_docstring(ast.parse((PACKAGE / side / "__init__.py").read_text()))
        assert doc and ("Rule" in doc or "rule" in doc or side == "simulator"), side
