"""The static types of ``start`` and ``run``: which arguments make the output ``str``.

Output is ``bytes`` unless ``text=True`` or an ``encoding`` is given; a type checker can only
say so with three overloads (``text`` false and no encoding; ``text=True``; an encoding). They
are written once here: :class:`RunCall` is the ``run`` of both :class:`Client` (its results
awaitable) and :class:`SyncClient`, and ``Client.start``'s overloads list only what the mode
changes, the other options being :class:`StartOptions`. Typing only: nothing here runs per call.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Generic, Literal, Protocol, TypedDict, TypeVar, Unpack, cast, overload

from exec_server_protocol.process import EnvPolicy
from exec_server_protocol.sandbox import SandboxIntent

from ._paths import Argv, RemotePath

__all__ = ["AsyncRun", "RunCall", "RunOptions", "StartOptions", "SyncRun", "async_run", "sync_run"]

_T = TypeVar("_T", bytes, str)
_B = TypeVar("_B", covariant=True)
_S = TypeVar("_S", covariant=True)
_F = TypeVar("_F", covariant=True)
_M = TypeVar("_M", covariant=True)


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


class RunCall(Protocol[_B, _S]):
    """``run(argv, ...)``: ``_B`` for bytes output, ``_S`` when ``text`` or ``encoding``."""

    @overload
    def __call__(
        self,
        argv: Argv,
        *,
        input: bytes | None = None,
        text: Literal[False] = False,
        encoding: None = None,
        **options: Unpack[RunOptions],
    ) -> _B: ...

    @overload
    def __call__(
        self,
        argv: Argv,
        *,
        input: str | bytes | None = None,
        text: Literal[True],
        encoding: str | None = None,
        **options: Unpack[RunOptions],
    ) -> _S: ...

    @overload
    def __call__(
        self,
        argv: Argv,
        *,
        input: str | bytes | None = None,
        text: bool = False,
        encoding: str,
        **options: Unpack[RunOptions],
    ) -> _S: ...


AsyncRun = RunCall[
    Coroutine[Any, Any, subprocess.CompletedProcess[bytes]],
    Coroutine[Any, Any, subprocess.CompletedProcess[str]],
]
SyncRun = RunCall[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[str]]


class _Method(Protocol[_F, _M]):
    """A method ``_M`` whose calls on an instance are typed as ``_F``."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _M: ...

    @overload
    def __get__(self, obj: object, owner: type[Any] | None = None) -> _F: ...


_AsyncM = TypeVar(
    "_AsyncM", bound=Callable[..., Coroutine[Any, Any, subprocess.CompletedProcess[Any]]]
)
_SyncM = TypeVar("_SyncM", bound=Callable[..., subprocess.CompletedProcess[Any]])


def async_run(method: _AsyncM) -> _Method[AsyncRun, _AsyncM]:
    """Types ``Client.run`` as :data:`AsyncRun`; returns ``method`` itself."""
    return cast("_Method[AsyncRun, _AsyncM]", method)


def sync_run(method: _SyncM) -> _Method[SyncRun, _SyncM]:
    """Types ``SyncClient.run`` as :data:`SyncRun`; returns ``method`` itself."""
    return cast("_Method[SyncRun, _SyncM]", method)
