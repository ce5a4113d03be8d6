"""The sandboxed child of a file-system method, for servers that are not root.

``python -m exec_server.sandbox._fs_worker`` runs under the sandbox helper like any sandboxed
command (see ``_fs``): it reads one pickled ``(function, args)`` from stdin — a module-level
function of ``exec_server.fs._ops`` — runs it, and writes the pickled ``("ok", result)`` or
``("error", exception)`` to stdout.
"""

from __future__ import annotations

import errno
import pickle
import sys


def main() -> None:
    from ..fs import _ops

    fn, args = pickle.load(sys.stdin.buffer)
    _ops.SANDBOXED.active = True
    try:
        outcome: tuple[str, object] = ("ok", fn(*args))
    except Exception as exc:
        outcome = ("error", exc)
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:  # an exception that does not pickle: keep its text
        data = pickle.dumps(("error", OSError(errno.EIO, f"{type(exc).__name__}: {exc}")))
    sys.stdout.buffer.write(data)


if __name__ == "__main__":
    main()
