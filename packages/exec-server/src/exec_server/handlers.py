"""What each method does: the handler table, keyed by the protocol's method specs.

:data:`HANDLERS` has one :class:`Handler` per entry of the protocol's ``METHODS`` (a unit test
checks it is exactly those). Whether a method answers at once or in a task is decided here,
statically, by how its entry is made:

* :func:`answer` — a function that returns the result, or :class:`Later` wrapping an awaitable
  of it when it must wait (a long poll with no data, a write to a full pipe); everything else
  is answered before the next message is looked at.
* :func:`in_task` — a function that returns an awaitable of the result (file work); a
  failure raised by the call itself (no session) is still answered at once.

``big_reply`` marks the methods whose replies can be large (the connection runs them one at a
time). Handlers raise the exceptions of :mod:`exec_server.exceptions`; the connection turns
them into wire errors (:mod:`exec_server.wire_errors`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pybase64
from exec_server_protocol import METHODS, EmptyParams, EmptyResult, MethodSpec
from exec_server_protocol.process import (
    ListResult,
    ReadParams,
    ReadResult,
    ResizeParams,
    SignalParams,
    StartParams,
    StartResult,
    TerminateParams,
    TerminateResult,
    WriteParams,
    WriteResult,
)
from exec_server_protocol.session import (
    EnvironmentConfigReadParams,
    EnvironmentConfigReadResult,
    EnvironmentInfo,
    InitializeParams,
    InitializeResult,
)

from .exceptions import InvalidArgument
from .fs import FsService
from .processes.writes import WriteStatus

if TYPE_CHECKING:
    from .connection import ClientConnection

__all__ = ["HANDLERS", "Handler", "Later"]

P = TypeVar("P")
R = TypeVar("R")


class Later(Generic[R]):
    """A result that is not ready yet: the connection awaits it in a task."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[R]) -> None:
        self.awaitable = awaitable


@dataclass(frozen=True, slots=True)
class Handler(Generic[P, R]):
    """How one method is run.

    ``run(conn, params)`` returns the result or :class:`Later` (``in_task`` False), or an
    awaitable of the result (``in_task`` True).
    """

    spec: MethodSpec
    run: Callable[[ClientConnection, P], Any]
    in_task: bool
    big_reply: bool = False


def answer(name: str, run: Callable[[ClientConnection, P], R | Later[R]]) -> Handler[P, R]:
    return Handler(METHODS[name], run, in_task=False)


def in_task(
    name: str, run: Callable[[ClientConnection, P], Awaitable[R]], *, big_reply: bool = False
) -> Handler[P, R]:
    return Handler(METHODS[name], run, in_task=True, big_reply=big_reply)


# ---------------------------------------------------------------------- session and environment


def _initialize(conn: ClientConnection, p: InitializeParams) -> InitializeResult:
    session = conn.server.initialize(conn, p)
    conn.session = session
    return InitializeResult(session_id=session.id, environment_info=conn.server.info)


def _environment_info(conn: ClientConnection, _: EmptyParams) -> EnvironmentInfo:
    return conn.server.info


def _environment_config_read(
    conn: ClientConnection, p: EnvironmentConfigReadParams
) -> EnvironmentConfigReadResult:
    from .environment_config import read_environment_config  # tomllib & co: on first use

    return read_environment_config(p)


# ---------------------------------------------------------------------- processes


def _process_start(conn: ClientConnection, p: StartParams) -> StartResult:
    session = conn.require_session()
    return session.audit.start(session.processes, p)


def _process_read(conn: ClientConnection, p: ReadParams) -> ReadResult | Later[ReadResult]:
    session = conn.require_session()
    table = session.processes
    proc = table.require(p.process_id)
    after = p.after_seq or 0
    if p.wait_ms and p.wait_ms > 0 and not proc.ready_for(after):
        return Later(table.read(p.process_id, after, p.max_bytes, p.wait_ms, session.interrupted))
    return table.snapshot(proc, after, p.max_bytes)


def _process_write(conn: ClientConnection, p: WriteParams) -> WriteResult | Later[WriteResult]:
    table = conn.require_session().processes
    if not p.write_id:
        raise InvalidArgument("writeId must not be empty")
    try:
        data = pybase64.b64decode(p.chunk, validate=True)
    except ValueError as exc:
        raise InvalidArgument(f"chunk is not valid base64: {exc}") from exc
    proc = table.get(p.process_id)
    if proc is None:
        return WriteResult(status="unknownProcess")
    outcome = proc.write(data, p.write_id, p.close_stdin)
    if not isinstance(outcome, str) and outcome.done():
        outcome = outcome.result()  # a retry of a finished write is answered at once
    if isinstance(outcome, str):
        return WriteResult(status=outcome)
    return Later(_write_result(outcome))


async def _write_result(outcome: asyncio.Future[WriteStatus]) -> WriteResult:
    return WriteResult(status=await asyncio.shield(outcome))


def _process_signal(conn: ClientConnection, p: SignalParams) -> EmptyResult:
    proc = conn.require_session().processes.get(p.process_id)
    if proc is not None:
        proc.send_signal(p.signal)
    return EmptyResult()


def _process_terminate(conn: ClientConnection, p: TerminateParams) -> TerminateResult:
    proc = conn.require_session().processes.get(p.process_id)
    if proc is None:
        return TerminateResult(running=False)
    return TerminateResult(running=proc.terminate())


def _process_list(conn: ClientConnection, _: EmptyParams) -> ListResult:
    return conn.require_session().processes.list()


def _process_resize(conn: ClientConnection, p: ResizeParams) -> EmptyResult:
    conn.require_session().processes.require(p.process_id).resize(p.rows, p.cols)
    return EmptyResult()


# ---------------------------------------------------------------------- file system


def _fs(
    method: Callable[[FsService, P], Awaitable[R]],
) -> Callable[[ClientConnection, P], Awaitable[R]]:
    """``method`` of the session's file service (``FsService.read_file``, ...)."""

    def run(conn: ClientConnection, p: P) -> Awaitable[R]:
        return method(conn.require_session().fs, p)

    run.__name__ = f"_fs_{method.__name__}"
    run.__wrapped__ = method  # type: ignore[attr-defined]  # for the table's type check
    return run


_HANDLERS: tuple[Handler[Any, Any], ...] = (
    answer("initialize", _initialize),
    answer("environment/info", _environment_info),
    answer("environmentConfig/read", _environment_config_read),
    answer("process/start", _process_start),
    answer("process/read", _process_read),
    answer("process/write", _process_write),
    answer("process/signal", _process_signal),
    answer("process/terminate", _process_terminate),
    answer("process/resize", _process_resize),
    answer("process/list", _process_list),
    in_task("fs/readFile", _fs(FsService.read_file), big_reply=True),
    in_task("fs/writeFile", _fs(FsService.write_file)),
    in_task("fs/createDirectory", _fs(FsService.create_directory)),
    in_task("fs/getMetadata", _fs(FsService.get_metadata)),
    in_task("fs/readDirectory", _fs(FsService.read_directory), big_reply=True),
    in_task("fs/remove", _fs(FsService.remove)),
    in_task("fs/copy", _fs(FsService.copy)),
    in_task("fs/canonicalize", _fs(FsService.canonicalize)),
    in_task("fs/walk", _fs(FsService.walk), big_reply=True),
    in_task("fs/open", _fs(FsService.open)),
    in_task("fs/readBlock", _fs(FsService.read_block)),
    in_task("fs/writeBlock", _fs(FsService.write_block)),
    in_task("fs/close", _fs(FsService.close)),
    in_task("fs/watchMissing", _fs(FsService.watch_missing)),
)

HANDLERS: dict[MethodSpec, Handler[Any, Any]] = {h.spec: h for h in _HANDLERS}
"""Every method's handler, keyed by its spec in the protocol's registry."""
