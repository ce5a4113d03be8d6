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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import OutputLost, SandboxDenied
from ._events import OutputEvent
from ._paths import argv_list

if TYPE_CHECKING:
    from ._process import Process

__all__ = [
    "KILL_GRACE",
    "Collected",
    "TimeoutExpired",
    "collect",
    "finish",
    "kill_and_reap",
    "prepare",
    "read_output",
]

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


async def read_output(
    proc: Process[Any],
    on_output: Callable[[OutputEvent], object],
    on_lost: Callable[[OutputLost], object] | None = None,
) -> None:
    """Read ``proc``'s events to the last, handing each output event to ``on_output``.

    Output evicted before it was read (:class:`OutputLost`) is skipped, the rest still comes;
    ``on_lost`` is told of each such gap.

    Raises:
        ConnectionLost, SessionLost: recovery failed before the process closed.
    """
    while True:
        try:
            async for event in proc:  # again after a loss: it continues past the gap
                if isinstance(event, OutputEvent):
                    on_output(event)
            return
        except OutputLost as lost:
            if on_lost is not None:
                on_lost(lost)


class Collected:
    """A command's stdout and stderr (a tty's output counts as stdout); the tail of both, for
    a sandbox denial, is the feed's (:meth:`EventFeed.tail`)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()

    def add(self, event: OutputEvent) -> None:
        (self.err if event.stream == "stderr" else self.out).extend(event.data)


async def collect(proc: Process[Any], input: bytes | None, into: Collected) -> None:
    """Feed ``input`` (then close stdin) and read every event, the output ``into`` (which
    keeps what was read if this is cut off)."""
    if input is not None:
        await proc.write(input, close_stdin=True)
    await read_output(proc, into.add)


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
    got = Collected()
    limit = asyncio.timeout(timeout)
    try:
        async with limit:
            await collect(proc, input, got)
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
        raise SandboxDenied(code, proc._feed.tail())
    done = subprocess.CompletedProcess(
        argv,
        code,
        _decode(bytes(got.out), encoding, errors),
        _decode(bytes(got.err), encoding, errors),
    )
    if check:
        done.check_returncode()
    return done
