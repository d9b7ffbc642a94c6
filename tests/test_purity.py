"""The protocol core imports no I/O library, so it stays testable with plain values."""

import ast
from pathlib import Path

import pytest

PURE = [
    "config",
    "kucoin",
    "ticks",
    "clock",
    "protocol",
    "recovery",
    "fallback",
    "simulator/model",
    "simulator/faults",
    "simulator/exchange",
    "simulator/malformed",
    "simulator/bullets",
    "redis_url",
    "fencing",
    "liveness",
]
IO_LIBS = {"gevent", "redis", "websocket", "flask", "flask_sock", "simple_websocket", "socket", "urllib.request"}


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module):
    source = (Path(__file__).parent.parent / "pledge_ws" / f"{module}.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    bad = {name for name in imported if name in IO_LIBS or name.split(".")[0] in IO_LIBS - {"urllib.request"}}
    assert not bad, f"{module} imports I/O libraries: {bad}"
