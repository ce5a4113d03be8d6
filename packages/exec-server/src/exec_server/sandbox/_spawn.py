"""Intent -> a spawn plan: the child applies the sandbox to itself between fork and exec.

In the child, in this order (each step needs the one before, none needs the ones after):
1. ``no_new_privs`` — nothing exec'd can gain privileges (setuid bits, file capabilities).
2. If something must stay read-only inside a writable root: a private mount namespace with
   read-only binds (``_mounts``) — mounting needs the privileges dropped below.
3. ``landlock_restrict_self`` on a ruleset built in the parent (fs, TCP, signal and
   abstract-socket scoping; ptrace of tasks outside the domain is denied by Landlock itself).
4. Drop every capability (an exec can't regain them under no_new_privs, not even as uid 0).
5. The seccomp filter (``_seccomp``).
6. Mark every descriptor above stdio close-on-exec.

A failing step raises in the child, and ``subprocess`` reports the start as failed: the command
never runs unsandboxed.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from exec_server_protocol.sandbox import SandboxIntent

from ..exceptions import SandboxUnavailable
from . import _kernel
from ._helper import HELPER_ARCH, HelperFile, build_script
from ._landlock import build_ruleset
from ._mounts import PLACEHOLDERS, MountPlan, apply_mounts, plan_mounts
from ._policy import Policy, compile_policy
from ._probe import missing_for
from ._seccomp import build_filter

__all__ = ["SandboxPlan", "prepare_spawn"]

SandboxType = Literal["none", "linuxSeccomp"]


@dataclass(frozen=True, slots=True)
class SandboxPlan:
    """How to spawn one command.

    Attributes:
        argv: what to exec (``arg0`` already in place of ``argv[0]``).
        executable: for ``Popen(executable=...)``; ``None`` = ``argv[0]`` looked up on PATH.
        env: the child's environment.
        preexec_fn: run in the child after setsid/dup2, before exec (after the spawner's own).
        pass_fds: descriptors the child must keep.
        kill_tree_on_exit: kill the whole tree as soon as the main process exits.
        sandbox_type: the ``sandboxType`` of the start result.
        release: call exactly once when the process and its tree are gone, or when the spawn
            failed (removes placeholders, closes the ruleset). ``None``: nothing to release.
    """

    argv: list[str]
    executable: str | None
    env: dict[str, str]
    preexec_fn: Callable[[], None] | None
    pass_fds: tuple[int, ...]
    kill_tree_on_exit: bool
    sandbox_type: SandboxType
    release: Callable[[], None] | None = field(default=None)


def prepare_spawn(
    intent: SandboxIntent | None,
    *,
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    arg0: str | None,
) -> SandboxPlan:
    """Plan the spawn of ``argv`` under ``intent``.

    Raises:
        RpcError: -32602 for a malformed intent.
        SandboxUnavailable: the host cannot enforce the intent (the message says what is
            missing); the command must not run.
    """
    child_argv = [arg0, *argv[1:]] if arg0 is not None else list(argv)
    executable = argv[0] if arg0 is not None else None
    policy = compile_policy(intent, cwd=cwd, env=env)
    if policy is None:
        # Like the reference, any sandbox object (even one asking for nothing) reports
        # linuxSeccomp; only a missing one reports none.
        sandbox_type: SandboxType = "none" if intent is None else "linuxSeccomp"
        return SandboxPlan(child_argv, executable, env, None, (), False, sandbox_type)
    mounts_needed = bool(policy.read_only)
    problem = missing_for(mounts=mounts_needed)
    if problem is not None:
        raise SandboxUnavailable(problem)
    setup = _ChildSetup(policy)
    if not USE_HELPER or _kernel.ARCH != HELPER_ARCH:
        return SandboxPlan(
            child_argv, executable, env, setup, (), True, "linuxSeccomp", setup.release
        )
    try:
        target = _resolve_program(argv[0], cwd)
        helper_fd = setup.write_helper()
    except BaseException:
        setup.release()
        raise
    return SandboxPlan(
        ["exec-server-sandbox", target, *child_argv],
        f"/proc/self/fd/{helper_fd}",
        env,
        None,
        setup.child_fds,
        True,
        "linuxSeccomp",
        setup.release,
    )


USE_HELPER = True
"""Spawn through the generated helper (vfork-fast) where it exists; else a ``preexec_fn``."""


def _resolve_program(program: str, cwd: str) -> str:
    """Where exec would find ``program`` (on the server's PATH), raising the OSError it would.

    Raises:
        FileNotFoundError: not found.
        PermissionError: found but not executable.
    """
    if "/" in program:
        path = os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        return program
    found = shutil.which(program, path=os.environ.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found


class _ChildSetup:
    """The preexec step. Everything is prepared here, in the parent; the child only applies it."""

    __slots__ = ("_bpf", "_helper_fd", "_lock", "_mounts", "_ruleset_fd", "_userns")

    def __init__(self, policy: Policy) -> None:
        self._lock = threading.Lock()
        self._bpf = build_filter(network_restricted=policy.network_restricted)
        self._mounts: MountPlan | None = plan_mounts(policy.read_only) if policy.read_only else None
        self._userns = os.geteuid() != 0
        self._ruleset_fd: int | None = None
        self._helper_fd: int | None = None
        try:
            self._ruleset_fd = build_ruleset(policy)
        except OSError as exc:
            self.release()
            raise SandboxUnavailable(
                f"sandbox unavailable: Landlock refused the rules: {exc}"
            ) from exc

    def __call__(self) -> None:
        ruleset_fd = self._ruleset_fd
        if ruleset_fd is None:
            raise RuntimeError("sandbox plan used after release")
        _kernel.set_no_new_privs()
        if self._mounts is not None:
            apply_mounts(self._mounts, new_user_namespace=self._userns)
        _kernel.landlock_restrict_self(ruleset_fd)
        _kernel.capset_drop_all()
        _kernel.seccomp_set_filter(self._bpf)
        _kernel.close_range_cloexec(3)

    @property
    def child_fds(self) -> tuple[int, ...]:
        """Descriptors the helper needs in the child (it closes them before the final exec)."""
        return tuple(fd for fd in (self._ruleset_fd, self._helper_fd) if fd is not None)

    def write_helper(self) -> int:
        """Generate the helper for this plan; returns its (read-only) descriptor."""
        assert self._ruleset_fd is not None
        helper = HelperFile()
        self._helper_fd = helper.fd
        helper.write(
            build_script(
                ruleset_fd=self._ruleset_fd,
                bpf=self._bpf,
                mounts=self._mounts,
                userns=self._userns,
                child_fds=self.child_fds,
            )
        )
        return helper.fd

    def release(self) -> None:
        with self._lock:
            fds = self.child_fds
            self._ruleset_fd = self._helper_fd = None
            mounts, self._mounts = self._mounts, None
        for fd in fds:
            os.close(fd)
        if mounts is not None:
            for placeholder in mounts.placeholders:
                PLACEHOLDERS.release(placeholder)
