"""``exec-server run | attach | ps``: the executor from a terminal, and the ``exec-server`` entry.

``exec-server run URL -- CMD ARGS...`` feels like ``ssh host CMD``: output streams as it comes,
stdin is forwarded (with its EOF), the exit code is the remote one (128+N for signal N), and a
dropped connection is ridden out by the client's resume (the user sees output arrive late, no
more). With ``--tty`` the local terminal goes raw (restored on every way out), its size is sent
and followed (SIGWINCH -> ``process/resize``), and keys, Ctrl-C included, go to the remote
terminal. Without a tty, Ctrl-C is sent as ``process/signal interrupt`` (the third one gives up
waiting and exits 130). ``--via "ssh host exec-server --listen stdio"`` reaches an executor
through a command instead of a URL.

``exec-server`` with anything but a subcommand starts the server (:mod:`exec_server.cli`),
imported only then, so the client commands need none of the server's dependencies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
import termios
import threading
import tty as tty_module
from collections.abc import Awaitable, Callable, Iterator, Sequence
from importlib import metadata
from typing import Any

from exec_server_protocol.process import EnvPolicy
from exec_server_protocol.sandbox import SandboxIntent

from .client import Client, OutputEvent, Process, connect, connect_stdio
from .client import sandbox as intents
from .client._run import read_output
from .exceptions import ConnectionLost, ExecServerError, OutputLost, RemoteError, StdinClosed

__all__ = ["main", "version"]

log = logging.getLogger("exec_server.cli")

EXIT_USAGE = 2
EXIT_CONNECTION = 255
"""Exit code when the executor cannot be reached or the connection is lost for good (as ssh)."""
INTERRUPTS_BEFORE_GIVING_UP = 3

PROMPT = "retry without the sandbox? [y/N] "


def version() -> str:
    """The installed ``exec-server`` distribution's version."""
    try:
        return metadata.version("exec-server")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


# ---------------------------------------------------------------------------- arguments


def _connection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--via",
        metavar="COMMAND",
        help="reach the executor through COMMAND's stdin/stdout instead of a URL, e.g. "
        '"ssh host exec-server --listen stdio" (opens no port; the executor\'s processes '
        "end with the command)",
    )
    p.add_argument(
        "--token-file", metavar="FILE", help="bearer token for the URL (trailing newline trimmed)"
    )


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="exec-server run",
        description="Run a command on an executor, as ssh would: exits with its exit code.",
        epilog="Example: exec-server run ws://127.0.0.1:8765 --tty -- bash",
    )
    p.add_argument("url", nargs="?", help="ws:// or wss:// URL of the executor (or --via)")
    p.add_argument("-t", "--tty", action="store_true", help="run on a pseudo-terminal")
    p.add_argument("--cwd", metavar="DIR", help="working directory (default: the remote home)")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="set a variable on top of the executor's environment (repeatable)",
    )
    p.add_argument(
        "--sandbox",
        choices=["read-only", "workspace-write"],
        help="run sandboxed (workspace-write: the working directory is writable); when it "
        "probably blocked the command, asks whether to retry without it (at a terminal)",
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="start the command and print 'SESSION PROCESS' instead of waiting (come back with "
        "attach; the session keeps it for the server's --session-ttl)",
    )
    _connection_arguments(p)
    return p


def _session_parser(prog: str, description: str, *, url: str | None) -> argparse.ArgumentParser:
    """A command on a detached session: the executor's URL (``url`` its nargs), the session."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("url", nargs=url, help="ws:// or wss:// URL of the executor")
    p.add_argument("session", help="the session id")
    return p


def _attach_parser() -> argparse.ArgumentParser:
    p = _session_parser(
        "exec-server attach",
        "Come back to a process of a detached session: its retained output, then live output "
        "and stdin; exits with its exit code. Resuming takes the session over from any client "
        "still attached to it.",
        url="?",
    )
    p.add_argument("process", help="the process id")
    p.add_argument("-t", "--tty", action="store_true", help="the process runs on a terminal")
    _connection_arguments(p)
    return p


def _ps_parser() -> argparse.ArgumentParser:
    p = _session_parser(
        "exec-server ps",
        "Show the processes of a detached session (resuming takes the session over from any "
        "client still attached to it). Servers without process/list can only report the "
        "processes named on the command line.",
        url=None,
    )
    p.add_argument("processes", nargs="*", metavar="PROCESS", help="process ids to report")
    p.add_argument("--token-file", metavar="FILE", help="bearer token")
    return p


class _UsageError(Exception):
    pass


def _split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    args = list(argv)
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1 :]
    return args, []


def _read_token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as exc:
        raise _UsageError(f"cannot read --token-file {path}: {exc.strerror}") from exc


def _connector(args: argparse.Namespace, *, resume: str | None = None) -> Any:
    """``connect(...)`` or ``connect_stdio(...)`` as the arguments ask."""
    if args.via is not None:
        if args.url is not None:
            raise _UsageError("give a URL or --via, not both")
        if resume is not None:
            raise _UsageError("a stdio executor (--via) has no sessions to come back to")
        argv = shlex.split(args.via)
        if not argv:
            raise _UsageError("--via needs a command")
        return connect_stdio(argv, client_name="exec-server-cli")
    if args.url is None:
        raise _UsageError("the executor's URL (or --via COMMAND) is missing")
    return connect(
        args.url,
        token=_read_token(args.token_file),
        client_name="exec-server-cli",
        resume_session_id=resume,
    )


def _sandbox_intent(kind: str | None, cwd: str) -> SandboxIntent | None:
    if kind is None:
        return None
    return intents.read_only(cwd) if kind == "read-only" else intents.workspace_write(cwd)


# ---------------------------------------------------------------------------- the terminal


@contextlib.contextmanager
def _raw_terminal(fd: int) -> Iterator[None]:
    """The terminal on ``fd`` in raw mode for the block; restored however the block ends."""
    saved = termios.tcgetattr(fd)
    try:
        tty_module.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _terminal_size() -> tuple[int, int] | None:
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            if size.lines > 0 and size.columns > 0:
                return size.lines, size.columns
    return None


class _Stdin:
    """Local stdin, read by a daemon thread (works alike for a terminal, a pipe and a file)
    into a small queue: b"" is the EOF. Reading starts on first use."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=8)
        self._thread: threading.Thread | None = None
        self._eof = False

    def _start(self) -> None:
        if self._thread is None:
            loop = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._pump, args=(loop,), name="exec-server-stdin", daemon=True
            )
            self._thread.start()

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                data = os.read(0, 65536)
            except OSError:
                data = b""
            try:
                asyncio.run_coroutine_threadsafe(self._queue.put(data), loop).result()
            except (RuntimeError, asyncio.CancelledError, Exception):
                return  # the loop is gone
            if not data:
                return

    async def read(self) -> bytes:
        """The next chunk, several queued ones joined; b"" at EOF (and after)."""
        if self._eof:
            return b""
        self._start()
        data = await self._queue.get()
        while data and not self._queue.empty():
            more = self._queue.get_nowait()
            if not more:
                self._queue.put_nowait(more)  # keep the EOF for the next read
                break
            data += more
        if not data:
            self._eof = True
        return data

    async def readline(self) -> bytes:
        line = b""
        while not line.endswith(b"\n"):
            data = await self.read()
            if not data:
                break
            line += data
        return line


def _write_out(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        except BrokenPipeError:
            return
        view = view[n:]


# ---------------------------------------------------------------------------- streaming


async def _forward_stdin(proc: Process, stdin: _Stdin) -> None:
    """Local stdin to the process, in order, then its EOF; stops when stdin is closed there."""
    try:
        while True:
            data = await stdin.read()
            if not data:
                await proc.close_stdin()
                return
            await proc.write(data)
    except StdinClosed:
        return


async def _stream(
    proc: Process,
    stdin: _Stdin,
    *,
    tty: bool,
    forward_stdin: bool = True,
) -> int:
    """Show the process's output, feed it stdin, follow the terminal; return its exit code."""
    loop = asyncio.get_running_loop()
    interrupts = 0
    done = asyncio.Event()
    handled: list[int] = []
    background: set[asyncio.Task[Any]] = set()

    def spawn(action: Awaitable[Any]) -> None:
        async def guarded() -> None:
            with contextlib.suppress(ExecServerError, TimeoutError):
                await action

        task = asyncio.ensure_future(guarded())
        background.add(task)
        task.add_done_callback(background.discard)

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts >= INTERRUPTS_BEFORE_GIVING_UP:
            done.set()
        else:
            spawn(proc.send_signal("interrupt"))

    def on_resize() -> None:
        size = _terminal_size()
        if size is not None:
            spawn(proc.resize(*size))

    def add_handler(sig: int, callback: Callable[[], None]) -> None:
        loop.add_signal_handler(sig, callback)
        handled.append(sig)

    if tty:
        add_handler(signal.SIGWINCH, on_resize)
    else:
        add_handler(signal.SIGINT, on_interrupt)
    feeder = asyncio.ensure_future(_forward_stdin(proc, stdin)) if forward_stdin else None

    def show(event: OutputEvent) -> None:
        _write_out(2 if event.stream == "stderr" else 1, event.data)

    def note_lost(exc: OutputLost) -> None:
        _note(f"exec-server: {exc}", tty)

    shown = asyncio.ensure_future(read_output(proc, show, note_lost))
    given_up = asyncio.ensure_future(done.wait())
    try:
        await asyncio.wait({shown, given_up}, return_when=asyncio.FIRST_COMPLETED)
        if given_up.done() and not shown.done():
            return 130
        shown.result()  # raises ConnectionLost and the like
        return await proc.wait(check_sandbox=False)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        for task in (feeder, shown, given_up, *background):
            if task is not None:
                task.cancel()


def _note(text: str, raw: bool) -> None:
    _write_out(2, (text + ("\r\n" if raw else "\n")).encode())


def _at_terminal() -> bool:
    return os.isatty(0) and os.isatty(2)


async def _ask_retry(stdin: _Stdin) -> bool:
    _write_out(2, PROMPT.encode())
    answer = await stdin.readline()
    return answer.strip().lower() in (b"y", b"yes")


# ---------------------------------------------------------------------------- commands


def _env(pairs: list[str], tty: bool) -> dict[str, str]:
    env: dict[str, str] = {}
    if tty and "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _UsageError(f"--env takes K=V, got {pair!r}")
        env[key] = value
    return env


async def _run(args: argparse.Namespace, command: list[str]) -> int:
    tty = args.tty
    if tty and not os.isatty(0):
        raise _UsageError("--tty needs a terminal on stdin")
    env = _env(args.env, tty)
    stdin = _Stdin()
    async with _connector(args) as client:
        assert isinstance(client, Client)
        info = client.environment_info or await client.environment()
        cwd = args.cwd or info.user_home_dir or info.cwd
        sandbox = _sandbox_intent(args.sandbox, cwd)
        while True:
            proc = await client.start(
                command,
                cwd=cwd,
                env=env,
                env_policy=EnvPolicy(inherit="all"),
                tty=tty,
                pipe_stdin=not tty and not args.detach,
                sandbox=sandbox,
                pty_size=_terminal_size() if tty else None,
            )
            if args.detach:
                print(client.session_id, proc.process_id)
                return 0
            with _raw_terminal(0) if tty else contextlib.nullcontext():
                try:
                    code = await _stream(proc, stdin, tty=tty)
                except asyncio.CancelledError:
                    # SIGTERM or SIGHUP to us: the command ends with its run, as one started by
                    # ssh does when its terminal hangs up (not left until the session expires).
                    await _end_quietly(proc)
                    raise
            denied = proc.exit is not None and proc.exit.sandbox_denied
            if not (denied and sandbox is not None):
                return code
            _note(f"exec-server: the sandbox probably blocked this command (exit code {code})",
                  False)  # fmt: skip
            if not _at_terminal() or not await _ask_retry(stdin):
                return code
            sandbox = None


async def _end_quietly(proc: Process) -> None:
    """Kill ``proc``'s tree, giving up after a few seconds or on any error."""
    with contextlib.suppress(ExecServerError, TimeoutError, OSError):
        async with asyncio.timeout(5):
            await proc.kill()


async def _attach(args: argparse.Namespace) -> int:
    if args.tty and not os.isatty(0):
        raise _UsageError("--tty needs a terminal on stdin")
    async with _connector(args, resume=args.session) as client:
        assert isinstance(client, Client)
        proc = client.attach(args.process)
        with _raw_terminal(0) if args.tty else contextlib.nullcontext():
            if args.tty:
                size = _terminal_size()
                if size is not None:
                    with contextlib.suppress(RemoteError):
                        await proc.resize(*size)
            return await _stream(proc, _Stdin(), tty=args.tty)


async def _ps(args: argparse.Namespace) -> int:
    async with connect(
        args.url,
        token=_read_token(args.token_file),
        client_name="exec-server-cli",
        resume_session_id=args.session,
    ) as client:
        info = client.environment_info or await client.environment()
        if not args.processes and not info.capabilities.get("processList", False):
            print("exec-server ps: this server cannot list a session's processes "
                  "(no process/list): name the process ids", file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
        print(f"{'PROCESS':<24} {'STATE':<8} {'EXIT':>5}  COMMAND")
        status = 0
        if not args.processes:
            for entry in await client.processes():
                state = "closed" if entry.closed else "running" if entry.running else "exited"
                code = "-" if entry.exit_code is None else str(entry.exit_code)
                print(f"{entry.process_id:<24} {state:<8} {code:>5}  {shlex.join(entry.argv)}")
            return status
        for process_id in args.processes:
            try:
                result = await client.read(process_id, max_bytes=1)
            except RemoteError as exc:
                print(f"{process_id:<24} {'unknown':<8} {'-':>5}  ({exc.message})")
                status = 1
                continue
            state = "closed" if result.closed else "exited" if result.exited else "running"
            code = "-" if result.exit_code is None else str(result.exit_code)
            print(f"{process_id:<24} {state:<8} {code:>5}")
        return status


# ---------------------------------------------------------------------------- entry


def _client_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    body: Callable[[argparse.Namespace, list[str]], Awaitable[int]],
    *,
    takes_command: bool,
) -> int:
    options, command = _split_command(argv) if takes_command else (list(argv), [])
    args = parser.parse_args(options)
    if takes_command and not command:
        parser.error("the command to run goes after --")
    logging.basicConfig(level=logging.WARNING, format="exec-server: %(message)s")
    main_task: asyncio.Task[int] | None = None
    signalled: list[int] = []

    async def runner() -> int:
        nonlocal main_task
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()

        def on_signal(sig: int) -> None:
            signalled.append(sig)
            if main_task is not None:
                main_task.cancel()

        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, on_signal, sig)
        return await body(args, command)

    try:
        return asyncio.run(runner())
    except _UsageError as exc:
        parser.error(str(exc))
    except asyncio.CancelledError:
        return 128 + (signalled[0] if signalled else signal.SIGINT)
    except KeyboardInterrupt:
        return 130
    except ConnectionLost as exc:
        print(f"exec-server: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    except RemoteError as exc:
        print(f"exec-server: the executor refused: {exc.message}", file=sys.stderr)
        return EXIT_CONNECTION - 1
    except ValueError as exc:  # a malformed URL
        print(f"exec-server: {exc}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """The ``exec-server`` command: ``run``, ``attach``, ``ps``, ``--version``, else the server."""
    args = list(sys.argv[1:] if argv is None else argv)
    first = args[0] if args else ""
    if first == "run":
        return _client_command(_run_parser(), args[1:], _run, takes_command=True)
    if first == "attach":
        return _client_command(
            _attach_parser(), args[1:], lambda a, _: _attach(a), takes_command=False
        )
    if first == "ps":
        return _client_command(_ps_parser(), args[1:], lambda a, _: _ps(a), takes_command=False)
    if "--version" in args:
        print(f"exec-server {version()}")
        return 0
    try:
        from .cli import main as serve
    except ModuleNotFoundError as exc:
        print(
            f"exec-server: the server needs its dependencies ({exc.name} is missing): "
            "pip install 'exec-server[server]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return serve(args)
