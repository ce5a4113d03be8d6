"""The checked-in JSON Schema is current, and no forbidden import arrow exists."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from exec_server_protocol import METHODS, NOTIFICATIONS, json_schema

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "protocol.schema.json"
SRC = ROOT / "packages" / "exec-server" / "src" / "exec_server"
PROTOCOL_SRC = ROOT / "packages" / "exec-server-protocol" / "src" / "exec_server_protocol"


def test_checked_in_schema_matches_the_protocol_package() -> None:
    current = json.loads(json.dumps(json_schema(), sort_keys=True))
    assert json.loads(FIXTURE.read_text()) == current, (
        "protocol changed: regenerate with "
        "`.venv/bin/python -m exec_server_protocol schema > tests/fixtures/protocol.schema.json`"
    )


def test_schema_lists_every_method_and_notification() -> None:
    schema = json_schema()
    assert set(schema["methods"]) == set(METHODS)
    assert set(schema["notifications"]) == set(NOTIFICATIONS)


def test_schema_cli_prints_the_same_document() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "exec_server_protocol", "schema"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(out) == json.loads(json.dumps(json_schema()))


def imports_of(path: Path, module: str) -> set[str]:
    """Absolute names imported by ``path`` (module ``module``), relative imports resolved."""
    tree = ast.parse(path.read_text())
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{alias.name}" for alias in node.names)
    return names


def modules(root: Path, package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)
        out[module] = imports_of(path, module)
    return out


def touches(names: set[str], prefixes: tuple[str, ...]) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}


def under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


IO = ("asyncio", "websockets", "subprocess", "socket", "os", "select", "threading")
SANS_IO = (
    # the codec (the whole protocol package) and the state machines
    "exec_server_protocol",
    "exec_server.rpc",
    "exec_server.sessions",
    "exec_server._fsm",
    "exec_server.exceptions",
    "exec_server.processes.ring",
    "exec_server.client._calls",
    "exec_server.client._state",
    "exec_server.client._reassembly",
)
SERVER_SIDE = (
    "exec_server.connection",
    "exec_server.handlers",
    "exec_server.processes",
    "exec_server.sandbox",
    "exec_server.fs",
    "exec_server.server",
    "exec_server.sessions",
)
CLIENT_INTERNALS_BELOW_THE_CLIENT = (
    "exec_server.client._process",
    "exec_server.client._feed",
    "exec_server.client._host",
    "exec_server.client._streams",
    "exec_server.client._run",
)

RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    # (rule, modules it binds, imports they must not have)
    (
        "the protocol package imports nothing of the server",
        ("exec_server_protocol",),
        ("exec_server",),
    ),
    ("the codec and the state machines do no I/O", SANS_IO, IO),
    (
        "process, sandbox and fs code never imports a transport",
        ("exec_server.processes", "exec_server.sandbox", "exec_server.fs"),
        ("exec_server.transport", "websockets", "exec_server.server", "exec_server.connection"),
    ),
    ("the client never imports server-side modules", ("exec_server.client",), SERVER_SIDE),
    (
        "a process, its feed and its streams see the client only through ProcessHost",
        CLIENT_INTERNALS_BELOW_THE_CLIENT,
        ("exec_server.client._client",),
    ),
]


def violations(mods: dict[str, set[str]]) -> list[tuple[str, str, set[str]]]:
    """Every forbidden arrow in ``mods``: (rule, module, what it imports)."""
    found = []
    for rule, bound, forbidden in RULES:
        for module, names in sorted(mods.items()):
            if under(module, *bound) and (bad := touches(names, forbidden)):
                found.append((rule, module, bad))
    return found


def test_no_forbidden_import_arrow_exists() -> None:
    mods = modules(SRC, "exec_server") | modules(PROTOCOL_SRC, "exec_server_protocol")
    assert violations(mods) == []


def test_every_sans_io_module_and_client_internal_exists() -> None:
    # A renamed module would silently leave its rule with nothing to check.
    mods = modules(SRC, "exec_server") | modules(PROTOCOL_SRC, "exec_server_protocol")
    for name in SANS_IO + CLIENT_INTERNALS_BELOW_THE_CLIENT:
        assert name in mods, name


def test_the_protocol_package_depends_on_the_serializer_only() -> None:
    for module, names in modules(PROTOCOL_SRC, "exec_server_protocol").items():
        allowed = {"msgspec"}
        third_party = {n.split(".")[0] for n in names} - {"exec_server_protocol"}
        stdlib = set(sys.stdlib_module_names) | {"__future__"}
        assert third_party - stdlib <= allowed, (module, third_party - stdlib)


PLANTED = {
    # one forbidden arrow per rule, written as the code would write it
    "exec_server_protocol/x.py": "from exec_server.rpc import RpcPeer\n",
    "exec_server_protocol/y.py": "import asyncio\n",
    "exec_server/rpc.py": "from asyncio import Future\n",
    "exec_server/processes/x.py": "from ..transport import websocket\n",
    "exec_server/client/x.py": "from ..processes import ManagedProcess\n",
    "exec_server/client/_process.py": "from ._client import Client\n",
}


def test_the_architecture_check_sees_a_planted_arrow_of_every_rule(tmp_path: Path) -> None:
    # Guard against a checker that can never fail (relative imports resolved by hand).
    for rel, text in PLANTED.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    mods = modules(tmp_path / "exec_server", "exec_server") | modules(
        tmp_path / "exec_server_protocol", "exec_server_protocol"
    )
    found = violations(mods)
    assert {rule for rule, _, _ in found} == {rule for rule, _, _ in RULES}
    assert {module for _, module, _ in found} == {
        "exec_server_protocol.x",
        "exec_server_protocol.y",
        "exec_server.rpc",
        "exec_server.processes.x",
        "exec_server.client.x",
        "exec_server.client._process",
    }
