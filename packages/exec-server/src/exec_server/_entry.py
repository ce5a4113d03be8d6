"""The ``exec-server`` command's entry point: the server unless a client subcommand is named.

Kept apart from :mod:`.cli_run` so that starting the server does not import the client and its
terminal handling (about a third of the server's import time): a warm pool starts executors
often, and each start pays its imports.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_CLIENT_COMMANDS = frozenset({"run", "attach", "ps"})


def main(argv: Sequence[str] | None = None) -> int:
    """``exec-server run|attach|ps|--version ...`` (the client, :func:`.cli_run.main`), else
    the server (:func:`.cli.main`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if (args and args[0] in _CLIENT_COMMANDS) or "--version" in args:
        from .cli_run import main as client_main

        return client_main(args)
    try:
        from .cli import main as serve
    except ModuleNotFoundError:
        # A client-only install: cli_run says which dependency is missing and how to add it.
        from .cli_run import main as client_main

        return client_main(args)
    return serve(args)
