"""How to start the server as another account, wherever the checkout lives (tests, benchmarks).

The venv's interpreter and the checkout may sit where another account cannot reach them (a clone
under root's home, mode 0700). Then the server's code and its dependencies are copied once per
test run into a directory everyone can read, and the base interpreter runs them from there.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile

import exec_server_protocol

import exec_server

__all__ = ["server_command", "setpriv"]

_EXEC_SERVER = os.path.join(os.path.dirname(sys.executable), "exec-server")
_IMPORTS = (
    "import exec_server.cli, exec_server.server, exec_server.connection, exec_server.fs,"
    " exec_server.sandbox._fs, exec_server.sandbox._spawn, exec_server.processes.table,"
    " exec_server.transport.websocket, exec_server.testing.confine,"
    " exec_server.environment_config, exec_server._exposition, sys;"
    " print('\\n'.join(sorted({m.__file__ for m in list(sys.modules.values())"
    " if getattr(m, '__file__', None)})))"
)


def setpriv(uid: int) -> list[str]:
    """``setpriv`` (util-linux) dropping to ``uid`` (and the group of the same number)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


@functools.cache
def server_command(uid: int) -> list[str]:
    """The command (without options) that runs ``exec-server`` as ``uid``."""
    probe = [*setpriv(uid), sys.executable, "-c", "import exec_server.cli"]
    if subprocess.run(probe, capture_output=True, cwd="/", check=False).returncode == 0:
        return [*setpriv(uid), _EXEC_SERVER]
    site = tempfile.mkdtemp(prefix="exec-server-site-")
    atexit.register(shutil.rmtree, site, True)
    os.chmod(site, 0o755)
    listed = subprocess.run(
        [sys.executable, "-c", _IMPORTS], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    roots = [p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p]
    roots += [
        os.path.dirname(os.path.dirname(package.__file__ or ""))
        for package in (exec_server, exec_server_protocol)
    ]
    copied: set[str] = set()
    for path in listed:
        for root in roots:
            if path.startswith(root + os.sep):
                top = os.path.relpath(path, root).split(os.sep)[0]
                if top not in copied:
                    copied.add(top)
                    source = os.path.join(root, top)
                    target = os.path.join(site, top)
                    if os.path.isdir(source):
                        shutil.copytree(source, target)
                    else:
                        shutil.copy2(source, target)
                break
    for dirpath, dirnames, filenames in os.walk(site):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for python in (
        os.path.realpath(sys.executable),
        f"/usr/bin/{minor}",
        f"/usr/local/bin/{minor}",
    ):
        runs = [*setpriv(uid), python, "-c", "pass"]
        if subprocess.run(runs, capture_output=True, cwd="/", check=False).returncode == 0:
            return [*setpriv(uid), "env", f"PYTHONPATH={site}", python, "-m", "exec_server"]
    raise RuntimeError(f"no {minor} interpreter that uid {uid} can run")
