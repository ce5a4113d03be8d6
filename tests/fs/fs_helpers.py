"""Helpers shared by the fs service tests (imported as a top-level module by pytest)."""

from __future__ import annotations

import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from exec_server.exceptions import RpcError
from exec_server_protocol import format_path_uri


def uri(path: str | Path | bytes) -> str:
    return format_path_uri(os.fsencode(path) if not isinstance(path, bytes) else path)


async def rpc_error(awaitable: Awaitable[Any]) -> RpcError:
    """The RpcError the awaitable raises (fails the test if it returns)."""
    with pytest.raises(RpcError) as info:
        await awaitable
    return info.value


def realpath(path: str | Path) -> str:
    return os.path.realpath(path)


def lexists(path: str | bytes) -> bool:
    return os.path.lexists(path)


def create_file(path: str | bytes | Path, content: bytes = b"", repeat: int = 1) -> None:
    with open(path, "wb") as f:
        for _ in range(repeat):
            f.write(content)
