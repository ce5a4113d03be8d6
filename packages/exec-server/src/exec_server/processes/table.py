"""The processes of one session: start, look up, retention after close, kill all.

Quotas (each refusal is a :class:`QuotaExceeded` naming its flag): running processes per
session and per server are counted at ``process/start``. Retained output is accounted per
session and for the whole server on every chunk; over either budget, the output of closed
processes in that scope goes first (oldest close first), then the oldest output of the process
that is writing. A ``process/start`` is refused while the running processes of its scope retain
so much that a new one could not keep its ``--retention-bytes``.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import signal
from collections.abc import Callable

from exec_server_protocol import InvalidPathUriError, NonLocalHostError, parse_path_uri
from exec_server_protocol.process import (
    ListResult,
    ProcessInfo,
    ReadResult,
    StartParams,
    StartResult,
)

from ..exceptions import (
    DuplicateProcess,
    InvalidArgument,
    OperationFailed,
    QuotaExceeded,
    Refused,
    SessionTakenOver,
    SpawnFailed,
    UnknownProcess,
)
from ..metrics import METRICS
from .config import ProcessConfig
from .env import build_env, resolve_executable
from .process import Emit, ManagedProcess
from .spawn import SpawnSpec
from .tree import CgroupManager

__all__ = ["ProcessConfig", "ProcessTable"]

log = logging.getLogger("exec_server.process")


class ProcessTable:
    """Process ids are scoped to their session; this is one session's table.

    Args:
        config: shared settings.
        emit: sends a notification frame to the session's current connection, if any.
        session_id: for logs.
        attached: whether ``emit`` reaches a connection now (default: always). A process that
            closes while it does not stays *unread* until a ``process/read`` reports it closed.
    """

    def __init__(
        self,
        config: ProcessConfig,
        emit: Emit,
        session_id: str,
        *,
        attached: Callable[[], bool] | None = None,
        on_exited: Callable[[ManagedProcess], None] | None = None,
    ) -> None:
        self._config = config
        self._on_exited = on_exited
        """Told of each exit, after the ``process/exited`` notification (the audit trail)."""
        self._emit = emit
        self._session_id = session_id
        self._attached = attached
        self._procs: dict[str, ManagedProcess] = {}
        self._argv: dict[str, list[str]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._paused = False
        """Output pumps stopped (the connection is congested); the one flag for it."""
        self._unread: set[str] = set()
        self._running = 0
        self.retained = 0
        """Output bytes retained by this session's processes."""

    def __len__(self) -> int:
        return len(self._procs)

    def __iter__(self):  # type: ignore[no-untyped-def]  # simple passthrough iterator
        return iter(self._procs.values())

    def get(self, process_id: str) -> ManagedProcess | None:
        return self._procs.get(process_id)

    def list(self) -> ListResult:
        """``process/list`` [ours]: every process still known, in start order."""
        return ListResult(
            processes=[
                ProcessInfo(
                    process_id=proc.process_id,
                    argv=self._argv.get(proc.process_id, []),
                    tty=proc.tty,
                    running=not proc.exited,
                    exit_code=proc.exit_code,
                    closed=proc.closed,
                )
                for proc in self._procs.values()
            ]
        )

    @property
    def settled(self) -> bool:
        """Every process has closed and its end reached the client (a notification sent while
        attached, or a ``process/read`` that reported it closed)."""
        return not self._unread and all(p.closed for p in self._procs.values())

    def snapshot(self, proc: ManagedProcess, after_seq: int, max_bytes: int | None) -> ReadResult:
        """``proc``'s output after ``after_seq`` as ``process/read`` answers it; a result that
        reports the process closed marks its end as read."""
        result = proc.snapshot(after_seq, max_bytes)
        if result.closed and proc.process_id in self._unread:
            self._unread.discard(proc.process_id)
            self._notify_settled()
        return result

    def _notify_settled(self) -> None:
        if self._config.on_settled is not None:
            self._config.on_settled()

    def require(self, process_id: str) -> ManagedProcess:
        proc = self._procs.get(process_id)
        if proc is None:
            raise UnknownProcess(process_id)
        return proc

    def start(self, p: StartParams) -> StartResult:
        cgroups = self._config.cgroups
        leaf = cgroups.new_leaf() if cgroups is not None else None
        try:
            return self._start(p, cgroups, leaf)
        except BaseException as exc:
            if cgroups is not None and leaf is not None:
                cgroups.discard_leaf(leaf)
            if not isinstance(exc, Refused):
                # Not a refusal of the request (bad params, a quota): the spawn failed.
                METRICS.process_finished("failed_to_start", 0.0)
            raise

    def _start(
        self, p: StartParams, cgroups: CgroupManager | None, leaf: str | None
    ) -> StartResult:
        if not p.argv:
            raise InvalidArgument("argv must not be empty")
        _check_exec_strings(p)
        try:
            cwd = parse_path_uri(p.cwd)
        except NonLocalHostError as exc:
            raise InvalidArgument(
                f"cwd URI `{p.cwd}` is not valid on this exec-server host: {exc}"
            ) from exc
        except InvalidPathUriError as exc:
            raise InvalidArgument(str(exc)) from exc
        if p.process_id in self._procs:
            raise DuplicateProcess(p.process_id)
        self._check_quotas()
        env = build_env(p.env, p.env_policy)
        argv = list(p.argv)
        rows, cols = (p.pty_size.rows, p.pty_size.cols) if p.pty_size else (24, 80)
        sandbox_type = "none"
        spec: SpawnSpec
        if p.sandbox is not None:
            from .. import sandbox

            try:
                plan = sandbox.prepare_spawn(
                    p.sandbox,
                    argv=argv,
                    cwd=cwd,
                    env=env,
                    arg0=p.arg0,
                    leaf=leaf,
                    fd_limit=self._config.child_fd_limit,
                )
            except OSError as exc:  # the program could not be resolved
                raise _spawn_error(exc, p.argv[0], cwd) from exc
            sandbox_type = plan.sandbox_type
            executable = plan.executable
            if executable is None:
                try:
                    executable = self._resolve(plan.argv[0], plan.env)
                except OperationFailed:
                    if plan.release is not None:
                        plan.release()
                    raise
            spec = SpawnSpec(
                argv=plan.argv,
                executable=executable,
                cwd=cwd,
                env=plan.env,
                tty=p.tty,
                pipe_stdin=p.pipe_stdin,
                rows=rows,
                cols=cols,
                pass_fds=plan.pass_fds,
                cleanup=plan.release,
                joins_leaf=plan.joins_leaf,
                fd_limit=plan.fd_limit,
            )
        else:
            executable = self._resolve(argv[0], env)
            if p.arg0 is not None:
                argv[0] = p.arg0
            spec = SpawnSpec(
                argv=argv,
                executable=executable,
                cwd=cwd,
                env=env,
                tty=p.tty,
                pipe_stdin=p.pipe_stdin,
                rows=rows,
                cols=cols,
                fd_limit=self._config.child_fd_limit,
            )
        sandboxed = sandbox_type != "none"
        denial_check = None
        if sandboxed:
            from ..sandbox import is_sandbox_denied

            denial_check = is_sandbox_denied
        proc = ManagedProcess(
            p.process_id,
            emit=self._emit,
            retention_bytes=self._config.retention_bytes,
            sandboxed=sandboxed,
            on_closed=self._on_closed,
            on_exited=self._on_exited,
            denial_check=denial_check,
            session_id=self._session_id,
            on_retained=self._on_retained,
        )
        try:
            proc.spawn(spec, cgroups, leaf, reading=not self._paused)
        except OSError as exc:
            raise _spawn_error(exc, p.argv[0], cwd) from exc
        self._procs[p.process_id] = proc
        self._argv[p.process_id] = list(p.argv)
        self._running += 1
        self._config.live_pids.add(proc.pid)
        log.info(
            "process started",
            extra={
                "session_id": self._session_id,
                "process_id": p.process_id,
                "pid": proc.pid,
                "argv0": argv[0],
                "tty": p.tty,
                "sandbox": sandbox_type,
            },
        )
        return StartResult(process_id=p.process_id, sandbox_type=sandbox_type)  # type: ignore[arg-type]  # validated by the sandbox module

    def _check_quotas(self) -> None:
        cfg = self._config
        if self._running >= cfg.max_processes_per_session:
            raise QuotaExceeded(
                f"--max-processes-per-session {cfg.max_processes_per_session}",
                f"this session has {self._running} running processes",
            )
        if len(cfg.live_pids) >= cfg.max_processes:
            raise QuotaExceeded(
                f"--max-processes {cfg.max_processes}",
                f"the server has {len(cfg.live_pids)} running processes",
            )
        for session_scope, flag, limit in (
            (True, "--max-session-retained-bytes", cfg.max_session_retained_bytes),
            (False, "--max-retained-bytes", cfg.max_retained_bytes),
        ):
            room = cfg.retention_bytes
            if self._over(session_scope, limit - room) > 0:
                self._evict_closed(session_scope, limit - room)
            used = self.retained if session_scope else cfg.retained
            if used + room > limit:
                where = "this session's" if session_scope else "the server's"
                raise QuotaExceeded(
                    f"{flag} {limit}",
                    f"{where} running processes retain {used} bytes of output: no room for "
                    f"another process's {room} (--retention-bytes)",
                )

    # ---------------------------------------------------------------- retained output

    def _over(self, session_scope: bool, limit: int) -> int:
        return (self.retained if session_scope else self._config.retained) - limit

    def _account(self, delta: int) -> None:
        self.retained += delta
        self._config.retained += delta

    def _on_retained(self, proc: ManagedProcess, delta: int) -> None:
        """``proc`` retains ``delta`` more bytes: enforce both budgets."""
        self._account(delta)
        cfg = self._config
        for session_scope, name, limit in (
            (True, "max_session_retained_bytes", cfg.max_session_retained_bytes),
            (False, "max_retained_bytes", cfg.max_retained_bytes),
        ):
            if self._over(session_scope, limit) <= 0:
                continue
            METRICS.limit_hit(name)
            self._evict_closed(session_scope, limit)
            over = self._over(session_scope, limit)
            if over > 0:
                self._account(-proc.ring.evict_oldest(over))

    def _evict_closed(self, session_scope: bool, limit: int) -> None:
        """Drop closed processes' output in the scope, oldest close first, until within
        ``limit`` (a read then reports it evicted through ``retainedFromSeq``)."""
        for proc, table in list(self._config.closed_retained.items()):
            if self._over(session_scope, limit) <= 0:
                return
            if session_scope and table is not self:
                continue
            table._drop_retained(proc, evict=True)

    def _drop_retained(self, proc: ManagedProcess, *, evict: bool) -> None:
        """Stop accounting ``proc``'s output (evicting it when ``evict``)."""
        self._config.closed_retained.pop(proc, None)
        self._account(-(proc.ring.evict_all() if evict else proc.ring.size))

    @staticmethod
    def _resolve(program: str, env: dict[str, str]) -> str:
        try:
            return resolve_executable(program, env)
        except OSError as exc:
            raise SpawnFailed(exc, {"reason": "programNotFound", "path": program}) from exc

    async def read(
        self,
        process_id: str,
        after_seq: int | None,
        max_bytes: int | None,
        wait_ms: int | None,
        interrupted: asyncio.Future[None] | None = None,
    ) -> ReadResult:
        proc = self.require(process_id)
        after = after_seq or 0
        if wait_ms and wait_ms > 0 and not proc.ready_for(after):
            changed = proc.changed()
            waiters: set[asyncio.Future[None]] = {changed}
            if interrupted is not None:
                waiters.add(interrupted)
            await asyncio.wait(waiters, timeout=wait_ms / 1000, return_when="FIRST_COMPLETED")
            if interrupted is not None and interrupted.done():
                raise SessionTakenOver
            proc = self._procs.get(process_id, proc)
        return self.snapshot(proc, after, max_bytes)

    def _on_closed(self, proc: ManagedProcess) -> None:
        self._config.live_pids.discard(proc.pid)
        if self._procs.get(proc.process_id) is not proc:
            return  # forgotten already (kill_all)
        self._running -= 1
        if proc.ring.size:
            self._config.closed_retained[proc] = self
        if self._attached is not None and not self._attached():
            self._unread.add(proc.process_id)
        loop = asyncio.get_running_loop()
        self._timers[proc.process_id] = loop.call_later(
            self._config.closed_retention_s, self._expire, proc.process_id
        )
        self._notify_settled()

    def _expire(self, process_id: str) -> None:
        self._timers.pop(process_id, None)
        proc = self._procs.pop(process_id, None)
        self._argv.pop(process_id, None)
        self._unread.discard(process_id)
        if proc is not None:
            self._drop_retained(proc, evict=False)
            proc.release()
        self._notify_settled()

    def pause_reading(self) -> None:
        """Stop pumping output (the connection is congested); new processes start paused."""
        if self._paused:
            return
        self._paused = True
        for proc in self._procs.values():
            proc.pause_reading()

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        for proc in self._procs.values():
            proc.resume_reading()

    async def stop_all(self, grace: float) -> None:
        """Stop every process tree with a written escalation, then forget them (shutdown,
        session expiry): SIGHUP to tty trees, ``grace``; SIGTERM to every tree, ``grace``;
        SIGKILL to what is left. A step is skipped once every main process has exited."""
        for sig, ttys_only in ((signal.SIGHUP, True), (signal.SIGTERM, False)):
            running = [p for p in self._procs.values() if not p.exited and (p.tty or not ttys_only)]
            if not running:
                continue
            for proc in running:
                proc.signal_tree(sig)
            if grace > 0:
                waits = {asyncio.ensure_future(_exited(p)) for p in running}
                _, pending = await asyncio.wait(waits, timeout=grace)
                for w in pending:
                    w.cancel()
        self.kill_all()

    def kill_all(self) -> None:
        """Kill every process tree of the session and forget them (expiry, shutdown)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        procs = list(self._procs.values())
        self._procs.clear()
        self._unread.clear()
        self._running = 0
        for proc in procs:
            self._drop_retained(proc, evict=False)
        for proc in procs:
            proc.kill_tree()
        live_pids = self._config.live_pids
        for proc in procs:
            # A process not reaped yet is reaped as soon as its death is reported (no zombie
            # outlives the session, and the event loop never waits for one); until then the
            # orphan reaper leaves its pid alone.
            proc.release(on_reaped=functools.partial(live_pids.discard, proc.pid))


def _spawn_error(exc: OSError, program: str, cwd: str) -> SpawnFailed:
    """A failed spawn: the OS error (its text is what the reference sends) and **[ours]** the
    ``data`` naming what was missing (``{"reason": "cwdNotFound", "path": cwd}`` or
    ``{"reason": "programNotFound", "path": argv0}``)."""
    data: dict[str, str] | None = None
    if exc.errno in (errno.ENOENT, errno.ENOTDIR) and not os.path.isdir(cwd):
        reason = "cwdNotFound" if exc.errno == errno.ENOENT else "cwdNotADirectory"
        data = {"reason": reason, "path": cwd}
    elif exc.errno == errno.ENOENT:
        data = {"reason": "programNotFound", "path": program}
    elif exc.errno in (errno.EACCES, errno.ENOEXEC):
        data = {"reason": "programNotExecutable", "path": program}
    return SpawnFailed(exc, data)


async def _exited(proc: ManagedProcess) -> None:
    while not proc.exited:
        await proc.changed()


def _check_exec_strings(p: StartParams) -> None:
    """What execve cannot carry: NUL bytes anywhere, ``=`` or nothing as a variable name."""
    if any("\0" in a for a in p.argv) or (p.arg0 is not None and "\0" in p.arg0):
        raise InvalidArgument("argv must not contain NUL bytes")
    policy_set = p.env_policy.set if p.env_policy is not None else {}
    for env in (p.env, policy_set):
        for name, value in env.items():
            if not name or "=" in name or "\0" in name or "\0" in value:
                raise InvalidArgument(f"invalid environment variable {name!r}")
