"""The options of ``start`` and ``run`` that do not change the output type, as TypedDicts.

Output is ``bytes`` unless ``text=True`` or an ``encoding`` is given; a type checker can only
say so with three overloads per method (``text`` false and no encoding; ``text=True``; an
encoding). The overloads of ``Client.start``, ``Client.run`` and ``SyncClient.run`` list only
what the mode changes and take the other options as ``**options: Unpack[...]`` of these.
Typing only: nothing here runs per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypedDict, TypeVar

from exec_server_protocol.process import EnvPolicy
from exec_server_protocol.sandbox import SandboxIntent

from ._paths import RemotePath

__all__ = ["RunOptions", "StartOptions"]

_T = TypeVar("_T", bytes, str)


class StartOptions(TypedDict, Generic[_T], total=False):
    """``Client.start``'s options besides the mode (``text``, ``encoding``); the callbacks
    take the output as ``_T``."""

    cwd: RemotePath | None
    env: Mapping[str, str] | None
    tty: bool
    pipe_stdin: bool
    arg0: str | None
    env_policy: EnvPolicy | None
    sandbox: SandboxIntent | None
    pty_size: tuple[int, int] | None
    process_id: str | None
    errors: str | None
    on_stdout: Callable[[_T], object] | None
    on_stderr: Callable[[_T], object] | None


class RunOptions(TypedDict, total=False):
    """``run``'s options besides the mode and the ``input`` (a ``str`` needs the text mode)."""

    cwd: RemotePath | None
    timeout: float | None
    check: bool
    env: Mapping[str, str] | None
    env_policy: EnvPolicy | None
    sandbox: SandboxIntent | None
    tty: bool
    errors: str | None
