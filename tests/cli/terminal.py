"""A real terminal for driving ``exec-server run``: a pty pair, the command as the session
leader with the pty as its controlling terminal (so it gets SIGWINCH), and an async
``expect`` over what it writes."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import struct
import subprocess
import termios


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``Terminal(argv)``: ``argv`` runs on a fresh pty of ``rows`` x ``cols``."""

    def __init__(
        self, argv: list[str], *, rows: int = 24, cols: int = 80, env: dict[str, str] | None = None
    ) -> None:
        master, slave = os.openpty()
        self.master = master
        self.resize(rows, cols)
        self.saved = termios.tcgetattr(master)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,  # the pty becomes its controlling terminal
            env=env,
        )
        os.close(slave)
        os.set_blocking(master, False)
        self.output = bytearray()
        self._eof = False
        self._changed = asyncio.Event()
        asyncio.get_running_loop().add_reader(master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: every slave end is closed
            data = b""
        if data:
            self.output += data
        else:
            self._eof = True
            asyncio.get_running_loop().remove_reader(self.master)
        self._changed.set()

    async def expect(self, pattern: bytes, *, timeout: float = 20.0) -> re.Match[bytes]:
        """Wait until the output so far matches ``pattern`` (a regex); returns the match."""
        regex = re.compile(pattern)
        async with asyncio.timeout(timeout):
            while True:
                match = regex.search(self.output)
                if match:
                    return match
                if self._eof:
                    raise AssertionError(f"EOF before {pattern!r}; output: {bytes(self.output)!r}")
                self._changed.clear()
                await self._changed.wait()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def resize(self, rows: int, cols: int) -> None:
        """Change the window size: the kernel sends SIGWINCH to the foreground process group."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def attributes(self) -> list[object]:
        return termios.tcgetattr(self.master)

    async def wait(self, *, timeout: float = 30.0) -> int:
        """Wait for the command to exit and its output to end; returns its exit code."""
        async with asyncio.timeout(timeout):
            while not self._eof:
                self._changed.clear()
                await self._changed.wait()
            return await asyncio.to_thread(self.proc.wait)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._eof:
            asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
