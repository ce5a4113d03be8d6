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


def test_the_protocol_package_imports_nothing_of_the_server() -> None:
    for module, names in modules(PROTOCOL_SRC, "exec_server_protocol").items():
        assert not touches(names, ("exec_server",)), module
        allowed = {"msgspec", "__future__", "typing", "dataclasses", "enum", "re", "posixpath"}
        third_party = {n.split(".")[0] for n in names} - {"exec_server_protocol"}
        stdlib = set(sys.stdlib_module_names)
        assert third_party - stdlib <= allowed, (module, third_party - stdlib)


def test_sans_io_cores_import_no_io() -> None:
    mods = modules(SRC, "exec_server")
    cores = (
        "exec_server.rpc",
        "exec_server.sessions",
        "exec_server._fsm",
        "exec_server.exceptions",
        "exec_server.processes.ring",
    )
    for core in cores:
        bad = touches(mods[core], ("asyncio", "websockets", "subprocess", "socket", "os", "select"))
        assert not bad, (core, bad)


def test_process_sandbox_and_fs_code_never_imports_a_transport() -> None:
    for module, names in modules(SRC, "exec_server").items():
        if module.startswith(("exec_server.processes", "exec_server.sandbox", "exec_server.fs")):
            bad = touches(names, ("exec_server.transport", "websockets", "exec_server.server"))
            assert not bad, (module, bad)


def test_the_client_never_imports_server_side_modules() -> None:
    server_side = (
        "exec_server.processes",
        "exec_server.sandbox",
        "exec_server.fs",
        "exec_server.server",
        "exec_server.sessions",
    )
    for module, names in modules(SRC, "exec_server").items():
        if module.startswith("exec_server.client"):
            bad = touches(names, server_side)
            assert not bad, (module, bad)


def test_the_architecture_check_sees_a_planted_arrow(tmp_path: Path) -> None:
    # Guard against a checker that can never fail: resolve a relative import by hand.
    pkg = tmp_path / "exec_server" / "client"
    pkg.mkdir(parents=True)
    bad = pkg / "x.py"
    bad.write_text("from ..processes import ManagedProcess\n")
    names = modules(tmp_path / "exec_server", "exec_server")["exec_server.client.x"]
    assert touches(names, ("exec_server.processes",))
