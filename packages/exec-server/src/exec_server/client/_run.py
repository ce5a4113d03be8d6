"""``Client.run``: run a command to its end, as :func:`subprocess.run` does locally.

The remote tree is killed (``process/terminate``: SIGKILL to the whole tree) when the timeout
passes, when the awaiting task is cancelled, and — in :meth:`SyncClient.run` — on
``KeyboardInterrupt``; the kill is awaited (bounded by :data:`KILL_GRACE`) before the
exception propagates, so nothing is left running on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from typing import TYPE_CHECKING, Any

from ..exceptions import OutputLost, SandboxDenied
from ._events import OutputEvent
from ._paths import argv_list
from ._process import TAIL_BYTES

if TYPE_CHECKING:
    from ._process import Process

__all__ = ["KILL_GRACE", "TimeoutExpired", "finish", "kill_and_reap", "prepare"]

KILL_GRACE = 10.0
"""How long a killed command's exit is awaited before giving up on it."""


class TimeoutExpired(subprocess.TimeoutExpired, TimeoutError):
    """``run(timeout=...)`` passed; the remote process tree was killed.

    It is :class:`subprocess.TimeoutExpired` (``cmd``, ``timeout``, ``output`` and
    ``stderr`` hold what was read before the kill) and also :class:`TimeoutError`.
    """

    def __str__(self) -> str:
        return f"{super().__str__()}; the remote process tree was killed"


def prepare(
    argv: Any, input: str | bytes | None, text: bool, encoding: str | None, errors: str | None
) -> tuple[list[str], bytes | None, str | None]:
    """``run``'s arguments checked: the argv as a list, the input as bytes, and the encoding
    the output is decoded with (None: bytes).

    Raises:
        TypeError: a str argv, or a str input without text or an encoding.
    """
    args = argv_list(argv)
    decode = encoding or ("utf-8" if text else None)
    if isinstance(input, str):
        if decode is None:
            raise TypeError("a str input needs text=True or an encoding")
        input = input.encode(decode, errors or "strict")
    return args, input, decode


class _Collected:
    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.tail = bytearray()


async def _collect(proc: Process[Any], input: bytes | None, into: _Collected) -> None:
    if input is not None:
        await proc.write(input, close_stdin=True)
    events = aiter(proc)
    while True:
        try:
            event = await anext(events)
        except StopAsyncIteration:
            return
        except OutputLost:
            continue  # evicted before we read it (the caller's buffer cap); the rest comes
        if isinstance(event, OutputEvent):
            (into.err if event.stream == "stderr" else into.out).extend(event.data)
            into.tail += event.data
            if len(into.tail) > 2 * TAIL_BYTES:
                del into.tail[:-TAIL_BYTES]


async def kill_and_reap(proc: Process[Any], grace: float = KILL_GRACE) -> None:
    """Kill the process tree and wait (up to ``grace`` s) until the server closed it (the exit
    is known and every output pipe reached EOF: the tree is gone); never raises."""
    with contextlib.suppress(Exception, TimeoutError):
        async with asyncio.timeout(grace):
            await proc.kill()
            await proc.wait_closed()


def _decode(data: bytes, encoding: str | None, errors: str | None) -> Any:
    if encoding is None:
        return data
    return data.decode(encoding, errors or "strict")


async def finish(
    proc: Process[Any],
    argv: list[str],
    *,
    input: bytes | None,
    timeout: float | None,
    check: bool,
    encoding: str | None,
    errors: str | None,
) -> subprocess.CompletedProcess[Any]:
    """Feed ``input``, read everything, wait for the exit (see :meth:`Client.run`)."""
    got = _Collected()
    limit = asyncio.timeout(timeout)
    try:
        async with limit:
            await _collect(proc, input, got)
            code = await proc.wait(check_sandbox=False)
    except TimeoutError:
        if not limit.expired():
            raise
        await kill_and_reap(proc)
        raise TimeoutExpired(
            argv,
            timeout or 0.0,
            _decode(bytes(got.out), encoding, errors),
            _decode(bytes(got.err), encoding, errors),
        ) from None
    except BaseException:  # cancelled (or the connection failed): leave nothing running
        kill = asyncio.ensure_future(kill_and_reap(proc))
        with contextlib.suppress(BaseException):
            await asyncio.shield(kill)
        raise
    if proc.exit is not None and proc.exit.sandbox_denied:
        raise SandboxDenied(code, bytes(got.tail[-TAIL_BYTES:]))
    done = subprocess.CompletedProcess(
        argv,
        code,
        _decode(bytes(got.out), encoding, errors),
        _decode(bytes(got.err), encoding, errors),
    )
    if check:
        done.check_returncode()
    return done
