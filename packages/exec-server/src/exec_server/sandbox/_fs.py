"""Blocking fs operations under the file-system rules of an intent.

The mount namespace, no_new_privs and Landlock are per thread, so each call runs in a fresh
thread that restricts itself, runs the operation and exits: it enters a private mount namespace
with the same mounts a sandboxed command gets (``_mounts``: the host read-only, the writable roots
writable, protected paths read-only), hides ``/proc`` under an empty read-only tmpfs (the thread
is the server: its ``/proc/self`` holds the server's environment and memory), and adds Landlock
where the kernel has it. A denied write raises the kernel's own ``OSError`` and nothing outside
the writable roots changes. The network and signal rules do not apply to fs methods. A thread of
a multi-threaded process can enter a mount namespace only as root: a server running as another
account runs the operation in a sandboxed child instead (``_fs_worker``, started through the
same helper as a sandboxed command; its own PID namespace and ``/proc`` keep the server's
``/proc`` out of reach). Either way, a write through a file with more than one hard link is
refused (its other name may lie outside the roots).

Error shape: Landlock denies with EACCES, but the reference's sandbox is a read-only mount and
answers a denied write with EROFS ("Read-only file system", -32603 on the wire), while a denied
*read* stays EACCES (-32600). So an EACCES whose path lies where reads are allowed but writes
are not is reported as EROFS — as a read-only mount would have answered first (the kernel checks
a read-only mount before file permissions). A protected path (``.git`` & co) is a real read-only
mount and gives EROFS by itself.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from exec_server_protocol.sandbox import SandboxIntent

from .._linux import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY
from ..exceptions import SandboxUnavailable
from ..fs import _ops
from . import _kernel, _probe, _spawn
from ._landlock import build_ruleset
from ._mounts import PLACEHOLDERS, MountPlan, apply_mounts, plan_mounts
from ._policy import Policy, compile_policy, inside, real_or_normal

__all__ = ["run_fs_sandboxed"]

T = TypeVar("T")

_HIDDEN_PROC = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
_WORKER_TIMEOUT_S = 600


async def run_fs_sandboxed(intent: SandboxIntent, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a thread restricted like a process started with ``intent``.

    Relative sandbox paths resolve against the intent's cwd (or the server's).

    Raises:
        InvalidArgument: a malformed intent.
        SandboxUnavailable: the host cannot enforce the intent's file-system rules (with
            external isolation configured, ``fn`` runs unrestricted instead).
        Exception: whatever ``fn`` raises (a denied write: ``PermissionError`` / ``OSError``).
    """
    policy = compile_policy(intent, cwd=os.getcwd(), env=os.environ)
    if policy is None or not policy.restricts_fs:
        return await asyncio.to_thread(fn, *args)
    fs_policy = replace(policy, network_restricted=False)
    try:
        layers = _probe.layers_for(not fs_policy.read_all)
    except SandboxUnavailable:
        if not _probe.external_isolation():
            raise
        return await asyncio.to_thread(fn, *args)  # under the outside isolation only
    try:
        if os.geteuid() == 0:
            return await _in_thread(fs_policy, fn, args)
        return await asyncio.to_thread(_in_worker, fs_policy, layers, fn, args)
    except PermissionError as exc:
        if exc.errno == errno.EACCES and _write_denied_here(exc, fs_policy):
            raise OSError(
                errno.EROFS, os.strerror(errno.EROFS), exc.filename, None, exc.filename2
            ) from exc
        raise


def _in_worker(policy: Policy, layers: _probe.Layers, fn: Callable[..., T], args: Any) -> T:
    """Run ``fn(*args)`` in a sandboxed child (``_fs_worker``): what a server that is not root
    does, since only root can give one of its threads a mount namespace."""
    import pickle  # here: a root server never needs it (0.4 MiB of idle RSS otherwise)

    setup = _spawn.Setup(policy, layers)
    try:
        helper_fd = setup.write_helper(userns=layers.userns, own_proc=layers.own_proc, leaf=None)
        python = _worker_python()
        result = subprocess.run(
            ["exec-server-sandbox", python, python, "-m", "exec_server.sandbox._fs_worker"],
            executable=f"/proc/self/fd/{helper_fd}",
            pass_fds=setup.child_fds,
            input=pickle.dumps((fn, args)),
            capture_output=True,
            env={
                "PATH": os.environ.get("PATH", os.defpath),
                "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            },
            cwd="/",
            start_new_session=True,
            timeout=_WORKER_TIMEOUT_S,
            check=False,
        )
    finally:
        setup.release()
    # The outcome travels on stdout; the exit status may already have been reaped by the
    # server's orphan reaper (then it reads 0), so it only matters when stdout is empty.
    if not result.stdout:
        tail = result.stderr.decode(errors="replace").strip()[-300:]
        raise OSError(errno.EIO, f"sandboxed file operation failed: {tail or result.returncode}")
    kind, value = pickle.loads(result.stdout)
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]  # what fn returned, pickled


@functools.cache
def _worker_python() -> str:
    """An interpreter of this Python version that this account may execute (the server's own
    may have been started by a privilege-dropping exec from a place the account cannot reach;
    the modules come from ``sys.path`` either way)."""
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = (sys.executable, f"/usr/bin/{minor}", f"/usr/local/bin/{minor}")
    return next((c for c in candidates if c and os.access(c, os.X_OK)), sys.executable)


async def _in_thread(policy: Policy, fn: Callable[..., T], args: Any) -> T:
    mounts = plan_mounts(policy)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    try:
        thread = threading.Thread(
            target=_run_restricted,
            args=(policy, mounts, fn, args, loop, future),
            name="fs-sandboxed",
            daemon=True,
        )
        thread.start()
    except BaseException:
        _release(mounts)
        raise
    # Placeholders go once the operation is over: removing one from this (host) namespace while
    # the thread still works would detach its read-only mount.
    future.add_done_callback(lambda _: _release(mounts))
    return await asyncio.shield(future)


def _write_denied_here(exc: OSError, policy: Policy) -> bool:
    """Whether ``exc``'s path is readable but not writable under ``policy``: then an EACCES
    there is the sandbox refusing a write (a denied read would be outside the readable set)."""
    if policy.write_all or exc.filename is None:
        return False
    try:
        path = real_or_normal(os.fsdecode(exc.filename))
    except (OSError, TypeError, ValueError):
        return False
    if any(inside(path, root) for root in policy.writable) and not any(
        inside(path, protected) for protected in policy.read_only
    ):
        return False  # a write the sandbox allows: the file's own permissions said no
    return policy.read_all or any(inside(path, root) for root in policy.readable)


def _release(mounts: MountPlan) -> None:
    for placeholder in mounts.placeholders:
        PLACEHOLDERS.release(placeholder)


def _run_restricted(
    policy: Policy,
    mounts: MountPlan,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[T],
) -> None:
    try:
        ruleset_fd = build_ruleset(policy, _probe.layers().landlock_abi)
        try:
            _kernel.set_no_new_privs()
            apply_mounts(mounts)
            _kernel.mount(b"tmpfs", b"/proc", _HIDDEN_PROC, b"tmpfs")
            if ruleset_fd is not None:
                _kernel.landlock_restrict_self(ruleset_fd)
        finally:
            if ruleset_fd is not None:
                os.close(ruleset_fd)
        _ops.SANDBOXED.active = True
        result = fn(*args)
    except BaseException as exc:
        loop.call_soon_threadsafe(_settle, future, None, exc)
    else:
        loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future[T], result: T | None, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]  # result is a T when exc is None
