"""``Client.shell()``: one persistent bash on the server, commands run in it one at a time.

Pipes, not a pty: with pipes stdout and stderr stay apart, which lets the end of each command
be reported out of band (below), and nothing is echoed, wrapped at a terminal width or
rewritten by a line discipline (``\\r\\n``, ^C characters, a 4 KiB canonical line limit). The
price: commands see no terminal (``isatty()`` is false, no job control); for full-screen or
password-prompting programs start a ``tty=True`` process and use :meth:`Process.expect`.

How a command's end is found: each :meth:`Shell.run` sends bash one line that assigns the
command to a variable (quoted, so a syntax error in it is only that command's exit status 2),
``eval``s it with stdin from /dev/null, then prints two random 128-bit nonces made for this run:
one on stdout (everything before it is the command's stdout), one with the exit status on
stderr. The nonces reach bash on its stdin, which bash has read before the command starts and
which the command cannot read (its stdin is /dev/null); nothing the command prints can end its
run early. ``cd``, ``export`` and functions persist, since ``eval`` runs in the shell itself.

Interrupting: when ``timeout`` passes or the caller is cancelled, SIGINT goes to the shell's
process group. bash has a SIGINT trap (a no-op that children do not inherit), so the command
dies and bash goes on to print the end markers: the shell stays usable. A command that ignores
SIGINT for :data:`INTERRUPT_GRACE` seconds gets the shell killed (:class:`ShellExited` next).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import ExecServerError

if TYPE_CHECKING:
    from ._client import Client
    from ._paths import RemotePath
    from ._process import Process

__all__ = ["INTERRUPT_GRACE", "Shell", "ShellExited"]

INTERRUPT_GRACE = 5.0
"""Seconds an interrupted command gets to die before the whole shell is killed."""

_SETUP = b"trap : INT; unset HISTFILE PROMPT_COMMAND\n"


class ShellExited(ExecServerError):
    """The shell is gone (a command ran ``exit``, ``set -e`` tripped, or it was killed)."""


class Shell:
    """A persistent bash (see the module docs). Make one with :meth:`Client.shell`; close it
    with :meth:`aclose` or ``async with``."""

    def __init__(self, proc: Process[bytes]) -> None:
        self._proc = proc
        self._lock = asyncio.Lock()
        self._draining: asyncio.Task[None] | None = None

    @property
    def process(self) -> Process[bytes]:
        """The bash process."""
        return self._proc

    @classmethod
    async def open(
        cls, client: Client, *, cwd: RemotePath | None, env: Mapping[str, str] | None, **kw: Any
    ) -> Shell:
        proc = await client.start(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=env, pipe_stdin=True, **kw
        )
        await proc.write(_SETUP)
        return cls(proc)

    async def __aenter__(self) -> Shell:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(
        self, command: str, *, timeout: float | None = None, errors: str = "replace"
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (bash syntax) in the shell and return its output and status.

        Returns:
            ``CompletedProcess(command, returncode, stdout, stderr)``, output decoded as UTF-8.

        Raises:
            TimeoutError: ``timeout`` passed; the command was interrupted (SIGINT) and the
                shell is ready for the next one.
            ShellExited: the shell is gone (the command ran ``exit``, ...).
        """
        async with self._lock:
            if self._draining is not None:
                await self._draining
                self._draining = None
            if self._proc.exit is not None or self._proc.stdout.at_eof():
                raise ShellExited(f"the shell exited (status {self._proc.returncode})")
            out_mark = secrets.token_hex(16).encode()
            err_mark = secrets.token_hex(16).encode()
            line = (
                f'__es_cmd={shlex.quote(command)}; {{ eval "$__es_cmd"; }} </dev/null; '
                f"__es_rc=$?; {{ set +x; }} 2>/dev/null; printf %s {out_mark.decode()}; "
                f"printf '%s %d\\n' {err_mark.decode()} \"$__es_rc\" >&2\n"
            )
            await self._proc.write(line.encode())
            finished = asyncio.ensure_future(self._finish(out_mark, err_mark))
            try:
                async with asyncio.timeout(timeout):
                    code, out, err = await asyncio.shield(finished)
            except BaseException as exc:
                self._draining = asyncio.ensure_future(self._interrupt(finished))
                if isinstance(exc, TimeoutError):
                    await asyncio.shield(self._draining)
                    self._draining = None
                    raise TimeoutError(
                        f"{command!r} did not finish within {timeout} s and was interrupted"
                    ) from None
                raise
            return subprocess.CompletedProcess(
                command, code, out.decode("utf-8", errors), err.decode("utf-8", errors)
            )

    async def _finish(self, out_mark: bytes, err_mark: bytes) -> tuple[int, bytes, bytes]:
        try:
            out, (err, status) = await asyncio.gather(
                self._proc.stdout.readuntil(out_mark), self._read_err(err_mark)
            )
        except asyncio.IncompleteReadError:
            raise ShellExited(
                f"the shell exited (status {await self._proc.wait(check_sandbox=False)})"
            ) from None
        return int(status), out[: -len(out_mark)], err

    async def _read_err(self, err_mark: bytes) -> tuple[bytes, bytes]:
        err = await self._proc.stderr.readuntil(err_mark)
        status = await self._proc.stderr.readuntil(b"\n")
        return err[: -len(err_mark)], status.strip()

    async def _interrupt(self, finished: asyncio.Future[Any]) -> None:
        """SIGINT the running command, let the markers arrive; kill the shell if they do not."""
        with contextlib.suppress(Exception):
            await self._proc.send_signal("interrupt")
        try:
            async with asyncio.timeout(INTERRUPT_GRACE):
                await asyncio.wait([finished])
        except TimeoutError:
            finished.cancel()
            with contextlib.suppress(Exception):
                await self._proc.kill()
        if finished.done() and not finished.cancelled():
            finished.exception()  # retrieved: the caller already got its TimeoutError

    async def aclose(self) -> None:
        """End the shell (its whole process tree is killed)."""
        with contextlib.suppress(Exception):
            await self._proc.kill()
            await self._proc.wait(check_sandbox=False)
