"""The one table where server exceptions become wire errors (exec_server.wire_errors)."""

from __future__ import annotations

import errno
import pickle

import pytest
from exec_server import exceptions as ex
from exec_server.wire_errors import WIRE_ERRORS, WireError, wire_error


def _server_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    todo: list[type[BaseException]] = [ex.Refused, ex.OperationFailed]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_server_exception_has_its_own_entry_in_the_table() -> None:
    # These answer as their base (the private ones are bases only).
    abstract = {ex.Refused, ex.OperationFailed, ex.NotOwner, ex.FsLimitExceeded}
    missing = [c for c in _server_exceptions() if c not in WIRE_ERRORS]
    assert {c for c in missing if not c.__name__.startswith("_")} == abstract
    for cls in _server_exceptions():
        if not cls.__name__.startswith("_") and cls not in {ex.Refused, ex.OperationFailed}:
            assert any(base in WIRE_ERRORS for base in cls.__mro__), cls


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ex.UnknownProcess("p"), (-32600, "unknown process id p")),
        (ex.DuplicateProcess("p"), (-32600, "process p already exists")),
        (ex.NotATty("p"), (-32600, "process p is not a tty")),
        (ex.SessionTakenOver(), (-32600, "session has been resumed by another connection")),
        (ex.UnknownSession("s"), (-32600, "unknown session id s")),
        (ex.NotOwner("s"), (-32600, "unknown session id s")),
        (ex.InvalidArgument("argv must not be empty"), (-32602, "argv must not be empty")),
        (
            ex.QuotaExceeded("--max-sessions 2", "the server has 2 sessions"),
            (-32011, "quota exceeded: the server has 2 sessions (--max-sessions 2)"),
        ),
        (ex.SandboxUnavailable("no user namespaces"), (-32603, "no user namespaces")),
        (
            ex.SpawnFailed(FileNotFoundError(errno.ENOENT, "x")),
            (-32603, "No such file or directory (os error 2)"),
        ),
        (ex.UnknownHandle("h"), (-32004, "unknown file handle `h`")),
        (
            ex.FsOsError(PermissionError(errno.EACCES, "x")),
            (-32600, "Permission denied (os error 13)"),
        ),
        (ex.FsOsError(OSError(errno.EROFS, "x")), (-32603, "Read-only file system (os error 30)")),
        (ex.FsOsError(OSError("no errno")), (-32603, "file-system operation failed")),
    ],
)
def test_exceptions_become_the_references_codes_and_texts(
    exc: BaseException, expected: tuple[int, str]
) -> None:
    assert wire_error(exc) == WireError(*expected)


def test_an_exception_outside_the_table_has_no_wire_error() -> None:
    assert wire_error(ValueError("internal detail")) is None


@pytest.mark.parametrize(
    "exc",
    [ex.FsRefused("path `x` is not a file"), ex.FsLimitExceeded("too large", "read_file_size")],
)
def test_fs_refusals_survive_the_trip_back_from_a_sandboxed_worker(exc: ex.FsRefused) -> None:
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is type(exc)
    assert wire_error(again) == wire_error(exc)
