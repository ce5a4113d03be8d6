"""`environmentConfig/read` (PROTOCOL.md §11): Codex configuration on the executor host.

Not implemented yet: answered with -32601 like a server that does not offer it (Codex treats
the probe as optional), and the `environmentConfigRead` capability is false.
"""

from __future__ import annotations

from typing import Any, NoReturn

from exec_server_protocol import ErrorCode

from .exceptions import RpcError

__all__ = ["read_environment_config"]


def read_environment_config(_: Any) -> NoReturn:
    raise RpcError(
        ErrorCode.METHOD_NOT_FOUND, "exec-server does not implement `environmentConfig/read`"
    )
