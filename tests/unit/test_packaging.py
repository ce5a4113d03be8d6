"""The client installs without the server's dependencies (issue 10): importing it, or the
client commands, loads none of them; the server's extra and version come from the metadata."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

SERVER_ONLY = ("orjson", "prometheus_client", "tomli_w")


def test_the_client_and_its_commands_import_no_server_only_module() -> None:
    code = (
        "import sys, exec_server.client, exec_server.cli_run, exec_server.transport._messages; "
        f"print([m for m in {SERVER_ONLY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_server_only_dependencies_are_the_server_extra() -> None:
    requires = metadata.requires("exec-server") or []
    base = {r.split(">")[0].split(";")[0].strip() for r in requires if "extra ==" not in r}
    server = {r.split(">")[0].strip() for r in requires if "extra == 'server'" in r}
    assert base == {"exec-server-protocol", "msgspec", "pybase64", "websockets"}
    assert server == {"orjson", "prometheus-client", "tomli-w"}


def test_version_is_the_installed_distributions() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "exec_server", "--version"], capture_output=True, text=True
    )
    assert out.stdout == f"exec-server {metadata.version('exec-server')}\n"
