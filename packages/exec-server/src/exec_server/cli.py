"""`exec-server`: run the server.

The bound URL (``ws://IP:PORT``, ``wss://`` with ``--tls-cert``) is the first line on stdout;
logs go to stderr, one line per event with the session and process ids. SIGTERM drains a
WebSocket server first (see ``--drain-timeout``); SIGINT, a second SIGTERM, and SIGTERM on stdio
shut down at once. Either way the shutdown is clean and kills every process the server started.
With TLS, SIGHUP reloads the certificate and key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib.util
import ipaddress
import logging
import os
import re
import resource
import signal
import sys
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from .auth import CapabilityToken, SignedBearerToken, read_secret_file
from .server import (
    MAX_REQUESTS_IN_FLIGHT,
    Server,
    ServerConfig,
    add_signal_handler,
    remove_signal_handlers,
)
from .transport import AcceptErrorHandler, TlsCertificate
from .transport.stdio import serve_stdio

__all__ = ["build_parser", "main"]

# The `[server]` extra's modules are imported where first needed (prometheus_client at the first
# scrape of /metrics, tomli_w by the environment config), so a client-only install would start
# and break later: it fails here, at import, and the entry point says what to install.
for _name in ("prometheus_client", "tomli_w"):
    if importlib.util.find_spec(_name) is None:
        raise ModuleNotFoundError(f"No module named {_name!r}", name=_name)

_EXTRA_KEYS = (
    "session_id",
    "process_id",
    "pid",
    "exit_code",
    "signal",
    "client",
    "principal",
    "argv0",
    "tty",
    "sandbox",
    "cwd",
    "sandboxed",
    "outcome",
    "duration_ms",
    "output_bytes",
)


SESSION_ID_LOG_PREFIX = 8
"""Characters of a session id shown in logs: enough to follow one session through the log,
while the full id, the only secret needed to resume a session, never reaches a log file."""

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_PLAIN_VALUE = re.compile(r"[\w.:/@+,-]*", re.ASCII)


def _escape_controls(text: str) -> str:
    """``text`` with every control character written as a Python escape (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _log_value(key: str, value: object) -> str:
    """An extra's value as it appears after ``key=``: client-supplied strings (process ids,
    client names, argv[0]) are quoted when they hold anything but plain characters, so they
    cannot forge another ``key=value`` pair or another line."""
    text = str(value)
    if key == "session_id":
        text = text[:SESSION_ID_LOG_PREFIX]
    if _PLAIN_VALUE.fullmatch(text):
        return text
    return '"' + _escape_controls(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


class _Formatter(logging.Formatter):
    """One line per event (a traceback, the only exception, keeps its own lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        # Messages interpolate client-supplied text (ids, method names): escape controls.
        return _escape_controls(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{k}={_log_value(k, getattr(record, k))}" for k in _EXTRA_KEYS if hasattr(record, k)
        ]
        return f"{line} {' '.join(extras)}" if extras else line


class _DeferredStderrHandler(logging.Handler):
    """Writes log lines to stderr once per event-loop iteration instead of once per line.

    A line per process start and exit would otherwise cost a write syscall each on the spawn
    path; lines logged outside the loop (other threads, start-up, shutdown) go out at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lines: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record) + "\n")
        except Exception:
            self.handleError(record)
            return
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._scheduled = False
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        if not self._lines:
            return
        data = "".join(self._lines)
        self._lines.clear()
        try:
            sys.stderr.write(data)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr is gone; logging must never take the server down


_DEFAULTS = ServerConfig()
"""The defaults of every setting (written once, in :class:`ServerConfig`)."""


_Setting = tuple[str, type[int] | type[float], float, str, str]
"""A numeric option: flag, type, default, metavar, what it sets (its help, then the default)."""

_SESSION_SETTINGS: tuple[_Setting, ...] = (
    (
        "--session-ttl",
        float,
        _DEFAULTS.session_ttl,
        "SECONDS",
        "how long a disconnected session (and its processes) survives",
    ),
    (
        "--retention-bytes",
        int,
        _DEFAULTS.retention_bytes,
        "N",
        "output retained per process for process/read",
    ),
    (
        "--closed-retention",
        float,
        _DEFAULTS.closed_retention_s,
        "SECONDS",
        "how long a closed process stays readable",
    ),
    (
        "--max-message-size",
        int,
        _DEFAULTS.max_message_size,
        "BYTES",
        "largest inbound message; larger closes the connection (1009)",
    ),
    (
        "--stop-grace",
        float,
        _DEFAULTS.stop_grace,
        "SECONDS",
        "at shutdown and session expiry: SIGHUP to tty processes, wait, SIGTERM to every process "
        "tree, wait this long each time, then SIGKILL",
    ),
)
_CONNECTION_SETTINGS: tuple[_Setting, ...] = (
    (
        "--handshake-timeout",
        float,
        _DEFAULTS.handshake_timeout,
        "SECONDS",
        "a connection that has not finished its WebSocket upgrade (or HTTP request) this long "
        "after accept is closed",
    ),
    (
        "--max-handshakes",
        int,
        _DEFAULTS.max_handshakes,
        "N",
        "connections still in the handshake at once; more are closed at accept",
    ),
    (
        "--max-handshakes-per-address",
        int,
        _DEFAULTS.max_handshakes_per_address,
        "N",
        "connections still in the handshake at once from one peer address; more are closed at "
        "accept",
    ),
    (
        "--drain-timeout",
        float,
        _DEFAULTS.drain_timeout,
        "SECONDS",
        "on SIGTERM, drain before the shutdown: /readyz answers 503 and new sessions are refused, "
        "while existing sessions (resumes included) keep working until their processes have "
        "exited and been read, or for at most this long. 0: shut down at once. A second SIGTERM, "
        "or SIGINT, stops at once",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="exec-server",
        description="Remote process-execution server speaking the Codex exec-server protocol "
        "(JSON-RPC over WebSocket or stdio).",
        epilog="From a terminal: exec-server run URL -- CMD ARGS... (also attach, ps; each "
        "with --help).",
    )
    p.add_argument("--version", action=_VersionAction)
    p.add_argument(
        "--listen",
        default="ws://127.0.0.1:0",
        help="where to listen: ws://IP:PORT (port 0 picks a free one; the bound URL is printed "
        "as the first stdout line; wss:// or ws:// with --tls-cert) or 'stdio' (one JSON "
        "message per line). Default: %(default)s",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level for stderr. Default: %(default)s",
    )
    for setting in _SESSION_SETTINGS:
        _number(p, *setting)
    p.add_argument(
        "--landlock-max-abi",
        type=int,
        default=None,
        metavar="N",
        help="use at most Landlock ABI N on top of the namespace sandbox (0: no Landlock). "
        "Default: whatever the kernel offers",
    )
    p.add_argument(
        "--isolation",
        choices=["host", "external"],
        default=_DEFAULTS.isolation,
        help="'external': each executor runs in its own sandboxed container or pod, so a "
        "sandboxed command this host cannot sandbox (e.g. user namespaces refused by the "
        "runtime's seccomp profile) runs under that isolation only, instead of being refused; "
        "logged as a warning at start and reported by environment/info. What the host can "
        "sandbox still is. Default: %(default)s (never run unsandboxed what asked for a sandbox)",
    )
    for setting in _CONNECTION_SETTINGS:
        _number(p, *setting)
    p.add_argument(
        "--no-cgroups",
        action="store_true",
        help="do not use per-process cgroups for tree kill (fall back to process groups)",
    )
    _number(
        p,
        "--concurrent-requests",
        int,
        MAX_REQUESTS_IN_FLIGHT,
        "N",
        "requests of one connection that run at once (long polls included); more wait unread "
        "until one finishes. The reference's default is 1",
    )
    p.add_argument(
        "--exit-on-stdin-close",
        action="store_true",
        help="shut down (cleanly, as on SIGINT) when stdin closes: a launcher that holds the "
        "other end of a stdin pipe ties the server's life to its own",
    )
    _add_quota_arguments(p)
    auth = p.add_argument_group("authentication (WebSocket only; /readyz and /livez need none)")
    auth.add_argument(
        "--ws-auth",
        choices=["none", "capability-token", "signed-bearer-token"],
        default="none",
        help="how clients authenticate the upgrade (Authorization: Bearer <token>)",
    )
    auth.add_argument(
        "--ws-token-file", metavar="FILE", help="capability token (trailing newline trimmed)"
    )
    auth.add_argument("--ws-token-sha256", metavar="HEX", help="SHA-256 of the capability token")
    auth.add_argument(
        "--ws-shared-secret-file", metavar="FILE", help="HS256 secret for signed tokens"
    )
    auth.add_argument("--ws-issuer", help="required `iss` claim of signed tokens")
    auth.add_argument("--ws-audience", help="required `aud` claim of signed tokens")
    _number(auth, "--ws-max-clock-skew-seconds", int, 30, "S", "tolerance for exp/nbf")
    auth.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="allow --listen on a non-loopback address with --ws-auth none: anyone who can "
        "reach the port can run any command as this user. Without it such a server refuses "
        "to start; with it, it logs a warning at start",
    )
    tls = p.add_argument_group("TLS (WebSocket only)")
    tls.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve wss:// with this PEM certificate chain (needs --tls-key); SIGHUP reloads "
        "both files, and a bad file on reload keeps the previous certificate",
    )
    tls.add_argument("--tls-key", metavar="FILE", help="the PEM private key (unencrypted)")
    return p


def _number(
    group: argparse._ActionsContainer,
    flag: str,
    kind: type[int] | type[float],
    default: float | None,
    metavar: str,
    what: str,
) -> None:
    """A numeric option whose help says what it sets, then its default."""
    group.add_argument(
        flag, type=kind, default=default, metavar=metavar, help=f"{what}. Default: %(default)s"
    )


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked (importlib.metadata costs
    several milliseconds of every start otherwise)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from .cli_run import version

        print(f"{parser.prog} {version()}")
        parser.exit()


_QUOTAS = (
    # flag, default, what it bounds
    ("--max-sessions", _DEFAULTS.max_sessions, "sessions on the server, attached or detached"),
    ("--max-processes", _DEFAULTS.max_processes, "running processes on the server"),
    (
        "--max-processes-per-session",
        _DEFAULTS.max_processes_per_session,
        "running processes in one session",
    ),
    (
        "--max-retained-bytes",
        _DEFAULTS.max_retained_bytes,
        "output retained by every process of the server; over it, closed processes' output is "
        "evicted first, then the oldest output of the process writing",
    ),
    (
        "--max-session-retained-bytes",
        _DEFAULTS.max_session_retained_bytes,
        "the same for the processes of one session",
    ),
    ("--max-fs-handles", _DEFAULTS.max_fs_handles, "open fs/open handles in one session"),
)


def _add_quota_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "quotas (a request over one is refused with -32011 naming the flag; the server keeps "
        "serving everything else)"
    )
    for flag, default, what in _QUOTAS:
        _number(group, flag, int, default, "N", what)
    group.add_argument(
        "--cgroup-pids-max",
        type=int,
        default=None,
        metavar="N",
        help="pids.max of each command's cgroup (tasks of its whole tree). Off by default: it "
        "needs the pids controller enabled for the server's cgroup subtree, which a server "
        "that itself lives in its home cgroup cannot do (cgroup v2 lets no cgroup with "
        "processes hand controllers to its children): run the server in a delegated cgroup "
        "of its own (systemd Delegate=yes) or at the root. The server refuses to start when "
        "it cannot apply it",
    )
    group.add_argument(
        "--cgroup-memory-max",
        type=int,
        default=None,
        metavar="BYTES",
        help="memory.max of each command's cgroup (the kernel OOM-kills inside that command "
        "only). Off by default, for the reason given for --cgroup-pids-max",
    )


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP literal, or a name) only ever accepts local connections.
    A name other than ``localhost`` counts as reachable: it may resolve to anything."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unauthenticated_exposure(args: argparse.Namespace) -> str | None:
    """The host of a WebSocket listener that others can reach without authentication."""
    if args.listen_address is None or args.ws_auth != "none":
        return None
    host: str = args.listen_address[0]
    return None if _is_loopback(host) else host


def _authenticator(args: argparse.Namespace, parser: argparse.ArgumentParser) -> object | None:
    if args.ws_auth == "capability-token":
        if args.ws_token_file:
            return CapabilityToken.from_token(read_secret_file(args.ws_token_file))
        if args.ws_token_sha256:
            try:
                return CapabilityToken.from_hex(args.ws_token_sha256)
            except ValueError as exc:
                parser.error(str(exc))
        parser.error("--ws-auth capability-token needs --ws-token-file or --ws-token-sha256")
    if args.ws_auth == "signed-bearer-token":
        if not args.ws_shared_secret_file:
            parser.error("--ws-auth signed-bearer-token needs --ws-shared-secret-file")
        return SignedBearerToken(
            read_secret_file(args.ws_shared_secret_file),
            issuer=args.ws_issuer,
            audience=args.ws_audience,
            max_clock_skew_s=args.ws_max_clock_skew_seconds,
        )
    return None


def _read_authenticator(args: argparse.Namespace, parser: argparse.ArgumentParser) -> object | None:
    try:
        return _authenticator(args, parser)
    except OSError as exc:
        parser.error(f"cannot read a secret: {exc}")


def _tls_certificate(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> TlsCertificate | None:
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert is None:
        if args.listen.startswith("wss:"):
            parser.error("--listen wss://... needs --tls-cert and --tls-key")
        return None
    if args.listen_address is None:
        parser.error("--tls-cert applies to a WebSocket listener, not to stdio")
    try:
        return TlsCertificate(args.tls_cert, args.tls_key)
    except ValueError as exc:
        parser.error(str(exc))


_M_MMAP_THRESHOLD = -3


def _return_big_buffers_to_the_kernel() -> None:
    """Make glibc allocate buffers of 1 MiB and more with their own mmap, always.

    By default glibc raises its mmap threshold after each large free, so later multi-MiB
    buffers (file reads, base64, encoded replies; some encoded in worker threads, which have
    malloc arenas of their own) come from heaps that keep the memory: measured with a client
    that never reads 400 x 8 MiB replies, the peak RSS went from 109-150 MiB to 89-98 MiB.
    Output chunks (64 KiB) are not affected. Nothing happens on other C libraries.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def _raise_fd_limit() -> int | None:
    """Raise the open-file soft limit to the hard limit: every connection, pipe and pidfd
    costs a descriptor, and the usual soft limit (1024) is reached by a thousand idle peers.

    Returns:
        The soft limit before, when it was raised (commands are started with it again: a
        program that loops over every possible descriptor, uses ``select()`` or sizes tables
        by the limit is slow or breaks with a huge one); else None.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        logging.getLogger("exec_server").info("cannot raise the open-file limit: %s", exc)
        return None
    logging.getLogger("exec_server").info(
        "open-file limit raised from %d to %d (commands start with %d)", soft, hard, soft
    )
    return soft


def _reload_tls(tls: TlsCertificate) -> None:
    logger = logging.getLogger("exec_server")
    try:
        tls.reload()
    except ValueError as exc:
        logger.error("TLS certificate reload failed, keeping the previous one: %s", exc)
        return
    logger.info("TLS certificate reloaded from %s", tls.cert_file)


async def _run(args: argparse.Namespace, config: ServerConfig) -> int:
    try:
        server = Server(config)
    except OSError as exc:  # the cgroup limits asked for cannot be applied
        print(f"exec-server: cannot apply --cgroup-pids-max/--cgroup-memory-max: {exc.strerror}",
              file=sys.stderr)  # fmt: skip
        return 1
    server.install_child_reaper()
    loop = asyncio.get_running_loop()
    AcceptErrorHandler().install(loop)
    stop = loop.create_future()  # shut down now
    drain = loop.create_future()  # drain, then shut down
    can_drain = args.listen_address is not None and config.drain_timeout > 0

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    def request_drain() -> None:
        if can_drain and not drain.done():
            drain.set_result(None)
        else:
            request_stop()

    add_signal_handler(signal.SIGINT, request_stop)
    add_signal_handler(signal.SIGTERM, request_drain)
    if args.exit_on_stdin_close and args.listen_address is not None:
        await _stop_when_stdin_closes(request_stop)  # (on stdio, stdin is the connection)
    try:
        if args.listen_address is None:
            serving = asyncio.ensure_future(
                serve_stdio(
                    lambda sink: server.connection_for(sink, detachable=False),
                    config.max_message_size,
                )
            )
            server.log_sandbox_layers()
            await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
            serving.cancel()
        else:
            host, port = args.listen_address
            try:
                host, port = await server.listen_websocket(host, port)
            except OSError as exc:
                print(
                    f"exec-server: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr
                )
                return 1
            shown = f"[{host}]" if ":" in host else host
            scheme = "ws" if config.tls is None else "wss"
            if config.tls is not None:
                add_signal_handler(signal.SIGHUP, _reload_tls, config.tls)
            sys.stdout.write(f"{scheme}://{shown}:{port}\n")
            sys.stdout.flush()
            logger = logging.getLogger("exec_server")
            logger.info("listening on %s://%s:%d", scheme, shown, port)
            if _unauthenticated_exposure(args) is not None:
                logger.warning(
                    "UNAUTHENTICATED REMOTE EXECUTION: ws://%s:%d is reachable from other "
                    "machines and --ws-auth is none (--allow-unauthenticated): anyone who can "
                    "connect can run any command as this user",
                    shown,
                    port,
                )
            server.log_sandbox_layers()
            await asyncio.wait({stop, drain}, return_when=asyncio.FIRST_COMPLETED)
            if not stop.done():
                await _drain(server, stop, config.drain_timeout)
    finally:
        await server.aclose()
        remove_signal_handlers()
    return 0


class _StdinWatch(asyncio.Protocol):
    """Calls ``on_close`` when stdin reaches EOF or fails; what it reads is dropped."""

    def __init__(self, on_close: Callable[[], None]) -> None:
        self._on_close = on_close

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool | None:
        self._closed()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    def _closed(self) -> None:
        logging.getLogger("exec_server").info("stdin closed (--exit-on-stdin-close): stopping")
        self._on_close()


async def _stop_when_stdin_closes(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    try:
        await loop.connect_read_pipe(lambda: _StdinWatch(stop), os.fdopen(0, "rb", 0))
    except (OSError, ValueError) as exc:  # a regular file: "closing" has no meaning there
        log = logging.getLogger("exec_server")
        log.warning("--exit-on-stdin-close: cannot watch stdin: %s", exc)


async def _drain(server: Server, stop: asyncio.Future[None], timeout: float) -> None:
    """Drain ``server`` until it is drained, ``timeout`` passes or ``stop`` is resolved."""
    logger = logging.getLogger("exec_server")
    server.start_drain()
    drained = asyncio.ensure_future(server.wait_drained())
    await asyncio.wait({drained, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if drained.done():
        logger.info("drained: every process has finished and been read")
    else:
        drained.cancel()
        reason = "stop requested" if stop.done() else f"--drain-timeout {timeout:g} s passed"
        logger.info("drain cut short (%s): stopping what is left", reason)


def _listen_address(value: str) -> tuple[str, int] | None:
    """``ws://IP:PORT`` or ``wss://IP:PORT`` -> (host, port); ``stdio`` -> None. Raises
    ValueError."""
    if value in ("stdio", "stdio://"):
        return None
    url = urlsplit(value)
    if url.scheme not in ("ws", "wss") or not url.hostname or url.path not in ("", "/"):
        raise ValueError(f"--listen must be ws://IP:PORT, wss://IP:PORT or stdio, got {value!r}")
    try:
        port = url.port or 0
    except ValueError as exc:
        raise ValueError(f"--listen {value!r}: {exc}") from None
    return url.hostname, port


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.listen_address = _listen_address(args.listen)
    except ValueError as exc:
        parser.error(str(exc))
    tls = _tls_certificate(args, parser)
    if args.handshake_timeout <= 0:
        parser.error("--handshake-timeout must be positive")
    for flag, _, _ in _QUOTAS:
        if getattr(args, flag[2:].replace("-", "_")) < 1:
            parser.error(f"{flag} must be at least 1")
    for flag in ("--cgroup-pids-max", "--cgroup-memory-max"):
        limit = getattr(args, flag[2:].replace("-", "_"))
        if limit is not None and limit < 1:
            parser.error(f"{flag} must be at least 1")
    if args.drain_timeout < 0:
        parser.error("--drain-timeout must not be negative")
    if args.concurrent_requests < 1:
        parser.error("--concurrent-requests must be at least 1")
    if args.max_handshakes < 1 or args.max_handshakes_per_address < 1:
        parser.error("--max-handshakes and --max-handshakes-per-address must be at least 1")
    exposed = _unauthenticated_exposure(args)
    if exposed is not None and not args.allow_unauthenticated:
        parser.error(
            f"refusing to listen on {exposed}, a non-loopback address, without authentication: "
            "anyone who can reach the port could run any command as this user. Use "
            "--ws-auth capability-token or --ws-auth signed-bearer-token, listen on 127.0.0.1, "
            "or pass --allow-unauthenticated to accept the risk"
        )
    handler = _DeferredStderrHandler()
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(args.log_level.upper())
    logging.getLogger("websockets").setLevel(logging.WARNING)
    if args.landlock_max_abi is not None or args.isolation == "external":
        from . import sandbox

        sandbox.configure(
            landlock_max_abi=args.landlock_max_abi,
            external_isolation=args.isolation == "external",
        )
    child_fd_limit = _raise_fd_limit()
    config = ServerConfig(
        session_ttl=args.session_ttl,
        retention_bytes=args.retention_bytes,
        closed_retention_s=args.closed_retention,
        max_message_size=args.max_message_size,
        authenticate=_read_authenticator(args, parser),  # type: ignore[arg-type]  # both classes match Authenticator
        use_cgroups=not args.no_cgroups,
        stop_grace=args.stop_grace,
        handshake_timeout=args.handshake_timeout,
        max_handshakes=args.max_handshakes,
        max_handshakes_per_address=args.max_handshakes_per_address,
        tls=tls,
        drain_timeout=args.drain_timeout,
        max_sessions=args.max_sessions,
        max_processes=args.max_processes,
        max_processes_per_session=args.max_processes_per_session,
        max_retained_bytes=args.max_retained_bytes,
        max_session_retained_bytes=args.max_session_retained_bytes,
        max_fs_handles=args.max_fs_handles,
        cgroup_pids_max=args.cgroup_pids_max,
        cgroup_memory_max=args.cgroup_memory_max,
        max_requests_in_flight=args.concurrent_requests,
        isolation=args.isolation,
        child_fd_limit=child_fd_limit,
    )
    _return_big_buffers_to_the_kernel()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(args, config))
    return 130
